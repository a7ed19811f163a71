//! A run's state as the state machine sees it.

use std::collections::BTreeSet;

use crate::flow::ConcurrencyKey;
use crate::ids::{FunctionSlug, RunId};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running)
    }

    /// The name the REST API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "Running",
            RunStatus::Completed => "Completed",
            RunStatus::Failed => "Failed",
            RunStatus::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "Running" => RunStatus::Running,
            "Completed" => RunStatus::Completed,
            "Failed" => RunStatus::Failed,
            "Cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

/// The part of a run that `decide` reads and rewrites.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub run_id: RunId,
    pub function: FunctionSlug,
    pub status: RunStatus,
    /// Attempts allowed per step (retries + 1).
    pub max_attempts: u32,
    /// The request version the SDK chose; -1 until its first reply.
    pub version: i32,
    /// Later calls carry `disable_immediate_execution: true`.
    pub force_plan: bool,
    /// Steps that have a memoized result.
    pub done: BTreeSet<String>,
    /// Steps ever planned (so a re-reported plan is not run twice).
    pub planned: BTreeSet<String>,
    /// Steps started and not finished: planned steps, sleeps, waits, invokes.
    pub pending: BTreeSet<String>,
    /// Pending steps planned with `parallelMode: "race"`: when one of them
    /// finishes, the run is called at once, siblings pending or not.
    pub race: BTreeSet<String>,
    /// Concurrency limits this run's calls count against (keys evaluated at start).
    pub concurrency: Vec<ConcurrencyKey>,
    /// Bytes of memoized step results (JSON), held to [`crate::MAX_RUN_STATE_BYTES`].
    pub state_bytes: u64,
}

impl RunState {
    /// A new run, before its first call.
    pub fn new(run_id: RunId, function: FunctionSlug, max_attempts: u32) -> RunState {
        RunState {
            run_id,
            function,
            status: RunStatus::Running,
            max_attempts: max_attempts.max(1),
            version: -1,
            force_plan: false,
            done: BTreeSet::new(),
            planned: BTreeSet::new(),
            pending: BTreeSet::new(),
            race: BTreeSet::new(),
            concurrency: Vec::new(),
            state_bytes: 0,
        }
    }
}
