//! The engine's one error type. Every service returns it; the HTTP API maps
//! it to a status and a body in one place (`api::error`).

use ingot_core::RunId;
use ingot_store::StoreError;

use crate::config::ConfigError;
use crate::sync::SyncError;

/// What an engine operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Settings the engine cannot run with.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The store refused or failed a read or a commit.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The outgoing HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A register or sync was refused.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// A run, event, app or function named by the caller does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller asked for something the current state does not allow.
    #[error("{0}")]
    Refused(String),
    /// A decision was retried this often because the run kept changing.
    #[error("run {run_id} kept changing; gave up after {tries} tries")]
    Contended { run_id: RunId, tries: usize },
    /// Failing the run after its writes kept failing failed too.
    #[error("run {run_id}: ending the run failed too: {source}")]
    Unrecordable {
        run_id: RunId,
        #[source]
        source: Box<EngineError>,
    },
    /// The trace exporter could not be set up.
    #[error("traces: {0}")]
    Telemetry(String),
    /// An event the engine built itself did not parse (a bug, reported, never a panic).
    #[error("an event the engine built is invalid: {0}")]
    InternalEvent(String),
}

impl EngineError {
    /// Whether this is the store's revision conflict (decide again).
    pub fn is_conflict(&self) -> bool {
        matches!(self, EngineError::Store(StoreError::Conflict(_)))
    }

    /// Whether the store says the item's lease is no longer this claim's.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, EngineError::Store(StoreError::LeaseLost(_)))
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
