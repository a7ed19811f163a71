//! What an expression will cost, read from its tokens before it is parsed:
//! how deep its syntax tree can nest, and how deeply its comprehensions
//! (`map`, `filter`, `all`, `exists`, `exists_one`) multiply work.
//!
//! The CEL parser, the visitor that builds the tree, the interpreter and the
//! tree's `Drop` all recurse once per level of nesting, and a stack overflow
//! aborts the process (it cannot be caught). So the depth is bounded here,
//! conservatively, without recursion and without trusting the parser.

/// The cost of an expression, as far as its tokens tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Shape {
    /// An upper bound on the depth of the syntax tree: one per open bracket
    /// (paren, list, map, call, index), one per left-nested operator of a
    /// chain (`a.b.c`, `a + b + c`, `!x`), one per ternary, and the depth of
    /// the balanced tree `&&` and `||` build.
    pub depth: usize,
    /// How deeply comprehensions nest in one another, or run over one
    /// another's result (`l.map(x, x).map(y, y)` is 2).
    pub comprehension_nesting: usize,
    /// The exponent of the input size in a bound on the work of evaluating:
    /// 0 without comprehensions (linear work, never refused), else the
    /// comprehension nesting plus one for a `map` or `filter`, whose result
    /// list is rebuilt on every step.
    pub degree: u32,
    /// How deeply function calls nest in one another's arguments:
    /// cel-interpreter 0.10 evaluates the first argument of a function call
    /// twice, so `int(int(int(1)))` costs `2^3`.
    pub call_nesting: usize,
    /// Tokens, the factor in front.
    pub tokens: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Open(Open),
    Close,
    /// An operator that nests to the left: `.`, `+`, `==`, `in`, `!`, ...
    Link,
    /// `,` or `:`: the start of a sibling.
    Sep,
    /// `&&` or `||`: operands become a balanced tree.
    Logic,
    Ternary,
    /// `.` before an identifier (a macro name is only a macro after `.`).
    Dot,
    /// An identifier that names a comprehension macro, right after a `.`.
    Macro(bool),
    Ident,
    Atom,
}

/// What an opening bracket opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// A paren, a list or a map.
    Group,
    /// The arguments of a function or method call.
    Call,
    /// The arguments of a comprehension macro; whether it rebuilds its list.
    Comprehension(bool),
}

/// Comprehension macros, and whether each rebuilds its result list per step.
fn macro_kind(ident: &[u8]) -> Option<bool> {
    match ident {
        b"map" | b"filter" => Some(true),
        b"all" | b"exists" | b"exists_one" => Some(false),
        _ => None,
    }
}

fn tokens(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0c => i += 1,
            b'/' if next == Some(b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' | b'\'' => {
                i = skip_string(b, i, false);
                out.push(Tok::Atom);
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && ident_byte(b[i]) {
                    i += 1;
                }
                let ident = &b[start..i];
                let prefix = ident.len() <= 2 && ident.iter().all(|c| b"rRbB".contains(c));
                if prefix && matches!(b.get(i), Some(b'"' | b'\'')) {
                    let raw = ident.iter().any(|c| matches!(c, b'r' | b'R'));
                    i = skip_string(b, i, raw);
                    out.push(Tok::Atom);
                } else if ident == b"in" {
                    out.push(Tok::Link);
                } else if let (Some(Tok::Dot), Some(rebuilds)) = (out.last(), macro_kind(ident)) {
                    out.push(Tok::Macro(rebuilds));
                } else {
                    out.push(Tok::Ident);
                }
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (ident_byte(b[i]) || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))) {
                    i += 1;
                }
                out.push(Tok::Atom);
            }
            b'(' | b'[' | b'{' => {
                let open = match (out.last(), c) {
                    (Some(Tok::Macro(rebuilds)), b'(') => Open::Comprehension(*rebuilds),
                    (Some(Tok::Ident), b'(') => Open::Call,
                    _ => Open::Group,
                };
                out.push(Tok::Open(open));
                i += 1;
            }
            b')' | b']' | b'}' => {
                out.push(Tok::Close);
                i += 1;
            }
            b'&' if next == Some(b'&') => {
                out.push(Tok::Logic);
                i += 2;
            }
            b'|' if next == Some(b'|') => {
                out.push(Tok::Logic);
                i += 2;
            }
            b',' | b':' => {
                out.push(Tok::Sep);
                i += 1;
            }
            b'?' => {
                out.push(Tok::Ternary);
                i += 1;
            }
            b'.' => {
                out.push(Tok::Dot);
                i += 1;
            }
            b'=' | b'!' | b'<' | b'>' if next == Some(b'=') => {
                out.push(Tok::Link);
                i += 2;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'!' | b'=' => {
                out.push(Tok::Link);
                i += 1;
            }
            _ => {
                // Anything else (non-ASCII, stray bytes) is the parser's to refuse.
                i += 1;
                while i < b.len() && (b[i] & 0xC0) == 0x80 {
                    i += 1;
                }
                out.push(Tok::Atom);
            }
        }
    }
    out
}

/// The index after the string literal whose quote is at `i` (or the end).
fn skip_string(b: &[u8], mut i: usize, raw: bool) -> usize {
    let q = b[i];
    let triple = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
    i += if triple { 3 } else { 1 };
    while i < b.len() {
        if !raw && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q && (!triple || (b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q))) {
            return i + if triple { 3 } else { 1 };
        }
        if !triple && b[i] == b'\n' {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// `ceil(log2(n))`: the depth of a balanced tree over `n` leaves.
fn ceil_log2(n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        (usize::BITS - (n - 1).leading_zeros()) as usize
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    base: usize,
    ternaries: usize,
    links: usize,
    /// Depth of the `&&`/`||` tree over this frame's operands.
    logic: usize,
    /// Comprehension level of the innermost comprehension around this frame.
    level: usize,
    /// Comprehension level the current operand's chain has reached.
    chain: usize,
    /// Deepest comprehension level opened inside this frame.
    inner: usize,
    comprehension: bool,
    /// Calls around this frame, itself included.
    calls: usize,
}

impl Frame {
    fn depth(&self) -> usize {
        self.base + self.ternaries + self.logic + self.links
    }
}

/// Reads the shape of `src` in two linear passes, without recursion.
pub(crate) fn shape(src: &str) -> Shape {
    let toks = tokens(src);
    // Pass 1: how many `&&`/`||` operands each bracket holds.
    let mut logic = vec![0usize];
    let mut open = vec![0usize];
    for t in &toks {
        match t {
            Tok::Open(_) => {
                logic.push(0);
                open.push(logic.len() - 1);
            }
            Tok::Close if open.len() > 1 => {
                open.pop();
            }
            Tok::Logic => {
                if let Some(&f) = open.last() {
                    logic[f] += 1;
                }
            }
            _ => {}
        }
    }
    // Pass 2: depth and comprehension levels.
    let mut shape = Shape { tokens: toks.len(), ..Shape::default() };
    let mut frames = vec![Frame { logic: ceil_log2(logic[0] + 1), ..Frame::default() }];
    let mut next_frame = 1;
    for t in &toks {
        let nested = frames.len() > 1;
        let top = frames.last_mut().expect("the outermost frame is never popped");
        match *t {
            Tok::Open(open) => {
                let around = top.level.max(top.chain);
                let level = match open {
                    Open::Comprehension(rebuilds) => {
                        let level = around + 1;
                        shape.degree = shape.degree.max((level + usize::from(rebuilds)) as u32);
                        level
                    }
                    Open::Call | Open::Group => top.level,
                };
                let calls = top.calls + usize::from(open == Open::Call);
                shape.call_nesting = shape.call_nesting.max(calls);
                top.inner = top.inner.max(level);
                let f = Frame {
                    base: top.depth() + 1,
                    logic: ceil_log2(logic.get(next_frame).copied().unwrap_or(0) + 1),
                    level,
                    inner: level,
                    comprehension: matches!(open, Open::Comprehension(_)),
                    calls,
                    ..Frame::default()
                };
                next_frame += 1;
                frames.push(f);
            }
            Tok::Close if nested => {
                let f = frames.pop().expect("more than one frame");
                let top = frames.last_mut().expect("the outermost frame is never popped");
                top.links += 1;
                top.inner = top.inner.max(f.inner);
                if f.comprehension {
                    top.chain = top.chain.max(f.inner);
                }
            }
            Tok::Close => {}
            Tok::Link | Tok::Dot => top.links += 1,
            Tok::Sep | Tok::Logic => {
                top.links = 0;
                top.chain = 0;
            }
            Tok::Ternary => {
                top.ternaries += 1;
                top.links = 0;
                top.chain = 0;
            }
            Tok::Macro(_) | Tok::Ident | Tok::Atom => {}
        }
        let top = frames.last().expect("the outermost frame is never popped");
        shape.depth = shape.depth.max(top.depth());
        shape.comprehension_nesting = shape.comprehension_nesting.max(top.inner);
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_follows_nesting_not_length() {
        let d = |s: &str| shape(s).depth;
        assert!(d("event.data.plan == 'pro'") <= 4);
        // Operands of && and || are siblings: a long conjunction stays shallow.
        let long = vec!["event.data.a == async.data.a"; 200].join(" && ");
        assert!(d(&long) <= 16, "{}", d(&long));
        assert_eq!(d(&format!("{}1{}", "(".repeat(100), ")".repeat(100))), 100);
        assert!(d(&format!("1{}", " + 1".repeat(100))) >= 100);
        assert!(d(&format!("event{}", ".a".repeat(100))) >= 100);
        assert!(d(&format!("{}1", "true ? 1 : ".repeat(100))) >= 100);
        // Brackets and operators inside strings and comments do not count.
        assert!(d(&format!("'{}' == \"{}\" // {}", "(".repeat(100), "[".repeat(100), "{".repeat(100))) <= 2);
        assert!(d(&format!("r'\\' == '{}'", "(".repeat(100))) <= 2);
        assert!(d(&format!("'''{}''' == b\"\"\"{}\"\"\"", "('".repeat(100), "[\"".repeat(100))) <= 2);
    }

    #[test]
    fn comprehensions_are_counted_nested_and_chained() {
        let s = |e: &str| shape(e);
        assert_eq!(s("event.data.x == 1").degree, 0);
        assert_eq!(s("event.data.items.exists(i, i == 1)").comprehension_nesting, 1);
        assert_eq!(s("event.data.items.exists(i, i == 1)").degree, 1);
        assert_eq!(s("event.data.items.map(i, i.id)").degree, 2);
        assert_eq!(s("l.exists(i, i.tags.exists(t, t == 'x'))").comprehension_nesting, 2);
        assert_eq!(s("l.map(x, x).map(y, y).size() > 0").comprehension_nesting, 2);
        assert_eq!(s("l.map(x, l.map(y, y)).filter(z, true)").degree, 4);
        assert_eq!(s("l.exists(i, i) && l.exists(j, j)").comprehension_nesting, 1);
        assert_eq!(s("f(l.exists(i, i), l.exists(j, j))").comprehension_nesting, 1);
        assert_eq!(s("int(int(int(1)))").call_nesting, 3);
        assert_eq!(s("a.startsWith(b) && size(c) > 0 && (((1)))").call_nesting, 1);
        assert_eq!(s("size(l.map(x, int(x)))").call_nesting, 2);
        // Only a `.name(` call is a macro.
        assert_eq!(s("map(l, x)").degree, 0);
        assert_eq!(s("event.data.map == 1").degree, 0);
    }
}
