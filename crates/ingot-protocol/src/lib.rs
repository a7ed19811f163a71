//! Inngest wire types: what crosses HTTP between the engine and SDK apps.
//!
//! Domain crates never derive `Serialize` on their own types; they convert to
//! and from the shapes here at the edge, so the protocol cannot drift by
//! accident.

pub mod call;
pub mod event;
pub mod flow;
pub mod opcode;
pub mod signature;
pub mod sync;
pub mod timestr;

pub use call::{CallCtx, CallRequest, CallStack};
pub use event::Event;
pub use opcode::{Op, Opcode};

use sha1::{Digest, Sha1};

/// Hashes a user step id the way the SDKs do: lowercase hex SHA-1.
pub fn hash_step_id(user_id: &str) -> String {
    hex::encode(Sha1::digest(user_id.as_bytes()))
}

/// The id SDKs give the `RunComplete` op: `sha1("complete")`.
pub fn run_complete_id() -> String {
    hash_step_id("complete")
}
