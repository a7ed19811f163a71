//! Renders a [`Document`] to PDF bytes with printpdf: A4 pages, the PDF
//! base fonts (Helvetica, nothing embedded), wrapped paragraphs, a page
//! number at the foot of each page.

use printpdf::{BuiltinFont, IndirectFontRef, Mm, PdfDocument, PdfDocumentReference, PdfLayerReference};
use serde::{Deserialize, Serialize};

/// Page size (A4) and margins, in millimetres.
const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 20.0;
/// Points to millimetres.
const PT: f32 = 0.3528;
/// Helvetica's average glyph width, in ems (used to wrap lines).
const AVG_EM: f32 = 0.52;

/// A document to render: a title and sections of paragraphs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// The title, on the first page.
    pub title: String,
    /// A line under the title.
    pub subtitle: Option<String>,
    /// The sections, in order.
    pub sections: Vec<Section>,
}

/// A heading and its paragraphs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// The heading.
    pub heading: String,
    /// The paragraphs, each wrapped to the page width.
    pub paragraphs: Vec<String>,
}

/// A rendered PDF.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The file.
    pub bytes: Vec<u8>,
    /// How many pages it has.
    pub pages: u32,
}

/// printpdf failed.
#[derive(Debug, thiserror::Error)]
#[error("rendering the PDF failed: {0}")]
pub struct RenderError(#[from] printpdf::Error);

/// Text the base fonts can show (WinAnsi): common symbols are spelled out,
/// anything else outside Latin-1 becomes `?`.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '→' => out.push_str("->"),
            '←' => out.push_str("<-"),
            '≥' => out.push_str(">="),
            '≤' => out.push_str("<="),
            '\t' => out.push_str("    "),
            '—' | '–' | '‘' | '’' | '“' | '”' | '•' | '…' | '€' | '™' => out.push(c),
            c if (' '..='~').contains(&c) || ('\u{a0}'..='\u{ff}').contains(&c) => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

/// Splits a paragraph into lines of at most `width` characters, at spaces
/// where it can.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
        }
        let needed = if line.is_empty() { word.chars().count() } else { line.chars().count() + 1 + word.chars().count() };
        if needed > width && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Writes lines top to bottom, adding pages as they fill.
struct Writer {
    doc: PdfDocumentReference,
    layer: PdfLayerReference,
    regular: IndirectFontRef,
    bold: IndirectFontRef,
    y: f32,
    pages: u32,
}

impl Writer {
    fn footer(&self) {
        self.layer.use_text(format!("advert-01 · page {}", self.pages), 8.0, Mm(MARGIN), Mm(MARGIN / 2.0), &self.regular);
    }

    fn new_page(&mut self) {
        let (page, layer) = self.doc.add_page(Mm(PAGE_W), Mm(PAGE_H), "text");
        self.layer = self.doc.get_page(page).get_layer(layer);
        self.pages += 1;
        self.y = PAGE_H - MARGIN;
        self.footer();
    }

    /// Writes a paragraph at `size` points, wrapped, then `gap` mm of space.
    fn paragraph(&mut self, text: &str, size: f32, bold: bool, gap: f32) {
        let line_h = size * PT * 1.45;
        let width = ((PAGE_W - 2.0 * MARGIN) / (size * PT * AVG_EM)) as usize;
        for line in wrap(&printable(text), width.max(10)) {
            if self.y - line_h < MARGIN {
                self.new_page();
            }
            self.y -= line_h;
            let font = if bold { &self.bold } else { &self.regular };
            self.layer.use_text(line, size, Mm(MARGIN), Mm(self.y), font);
        }
        self.y -= gap;
    }
}

/// Renders the document.
pub fn render(doc: &Document) -> Result<Rendered, RenderError> {
    let (pdf, page, layer) = PdfDocument::new(printable(&doc.title), Mm(PAGE_W), Mm(PAGE_H), "text");
    let regular = pdf.add_builtin_font(BuiltinFont::Helvetica)?;
    let bold = pdf.add_builtin_font(BuiltinFont::HelveticaBold)?;
    let layer = pdf.get_page(page).get_layer(layer);
    let mut w = Writer { doc: pdf, layer, regular, bold, y: PAGE_H - MARGIN, pages: 1 };
    w.footer();
    w.paragraph(&doc.title, 20.0, true, 2.0);
    if let Some(sub) = &doc.subtitle {
        w.paragraph(sub, 10.0, false, 4.0);
    }
    for section in &doc.sections {
        if !section.heading.is_empty() {
            w.paragraph(&section.heading, 13.0, true, 1.5);
        }
        for p in &section.paragraphs {
            w.paragraph(p, 10.0, false, 1.5);
        }
        w.y -= 3.0;
    }
    let pages = w.pages;
    let bytes = w.doc.save_to_bytes()?;
    Ok(Rendered { bytes, pages })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(printable("a → b ≥ 3 — ok 日"), "a -> b >= 3 — ok ?");
    }

    #[test]
    fn long_documents_get_more_pages() {
        let para = "word ".repeat(400);
        let doc = Document {
            title: "T".into(),
            subtitle: None,
            sections: vec![Section { heading: "H".into(), paragraphs: vec![para.clone(), para.clone(), para] }],
        };
        let r = render(&doc).unwrap();
        assert!(r.pages >= 2, "{} pages", r.pages);
        assert!(r.bytes.starts_with(b"%PDF-"));
    }
}
