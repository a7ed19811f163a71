//! Ingot's pure domain: ids, the run state machine, retry backoff, trigger
//! matching and expressions, and the events a run's lifecycle emits.
//!
//! **Architecture invariant:** nothing here does IO, reads a clock or draws a
//! random number. Time and jitter come in as arguments; decisions go out as
//! effects for the shell to commit.

pub mod backoff;
pub mod decide;
pub mod errors;
pub mod expr;
pub mod flow;
pub mod gateway;
pub mod ids;
pub mod keys;
pub mod lifecycle;
pub mod matching;
pub mod run;
pub mod start;

pub use decide::{decide, decide_with, AllFunctions, CallTarget, Decision, Effect, Input, Lookup, Policy, Reply, ReplyMeta};
pub use decide::{MAX_RUN_STATE_BYTES, MAX_STEP_OUTPUT_BYTES};
pub use ids::{EventId, FunctionSlug, RunId};
pub use run::{RunState, RunStatus};
