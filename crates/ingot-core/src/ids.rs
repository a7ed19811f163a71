//! Newtyped identifiers.

use std::fmt;

use ulid::Ulid;

macro_rules! ulid_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of ", $what, " (a ULID).")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Ulid);

        impl $name {
            pub fn parse(s: &str) -> Option<Self> {
                Ulid::from_string(s).ok().map($name)
            }
            /// Milliseconds since the epoch encoded in the id.
            pub fn timestamp_ms(&self) -> u64 {
                self.0.timestamp_ms()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

ulid_id!(RunId, "a function run");
ulid_id!(EventId, "an event as stored by the engine (its internal id)");

/// A function's composite id, `<app>-<fn>`, as SDKs register it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionSlug(pub String);

impl FunctionSlug {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
