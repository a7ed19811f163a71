//! Golden payloads captured from the official SDKs (`shared/fixtures`,
//! beside the repository), for the crate's tests.

use std::path::PathBuf;

use serde_json::Value;

/// The fixtures directory: `<repo>/../shared/fixtures`.
pub(crate) fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

/// Loads one fixture file, e.g. `"js-v4/two-steps.01-discovery.json"`.
pub(crate) fn load(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("golden fixture {} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
