//! What every service reads: the settings, the store, the compiled
//! functions, the clock, the outgoing HTTP client and the paused flags.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use ingot_store::{Commit, Store, WriteOp};

use crate::error::Result;
use crate::registry::Registry;
use crate::{Clock, EngineConfig};

/// The state the services share; built once by [`crate::Engine::new`].
pub struct Shared {
    pub config: EngineConfig,
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub clock: Clock,
    pub http: reqwest::Client,
    /// Makes `step.fetch` and `step.ai.infer` requests.
    pub gateway: crate::gateway::Gateway,
    pub paused: Paused,
}

impl Shared {
    /// Commits `ops` as one commit.
    pub async fn commit(&self, ops: Vec<WriteOp>) -> Result<ingot_store::CommitOutcome> {
        Ok(self.store.commit(Commit { ops }).await?)
    }
}

/// Functions paused from the dashboard: they start no new runs. The flag is
/// stored; this is its read copy, loaded at start and changed with the store.
#[derive(Default)]
pub struct Paused {
    set: RwLock<HashSet<String>>,
}

impl Paused {
    /// Reads the stored flags.
    pub async fn load(&self, store: &dyn Store) -> Result<()> {
        let stored: HashSet<String> = store.paused_functions().await?.into_iter().collect();
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = stored;
        Ok(())
    }

    /// Whether the function `slug` is paused.
    pub fn contains(&self, slug: &str) -> bool {
        self.set.read().unwrap_or_else(|e| e.into_inner()).contains(slug)
    }

    /// Pauses or resumes `slug`, durably; returns whether that changed anything.
    pub async fn set(&self, store: &dyn Store, slug: &str, paused: bool) -> Result<bool> {
        let op = WriteOp::SetPaused { slug: slug.to_string(), paused };
        store.commit(Commit { ops: vec![op] }).await?;
        let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
        Ok(if paused { set.insert(slug.to_string()) } else { set.remove(slug) })
    }
}

/// How often a node re-reads what other nodes change.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// On a store several nodes share: re-reads the synced functions and the
/// paused flags every [`FOLLOW_EVERY`] (a sync or a pause on another node
/// reaches this one that much later), and queues the next tick of any cron
/// trigger they added (a tick is one queue item per function and expression
/// in the shared queue, so it fires once across the nodes).
pub async fn follow_other_nodes(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let before = shared.registry.fingerprint();
        if let Err(e) = shared.registry.reload(shared.store.as_ref()).await {
            tracing::warn!(error = %e, "re-reading synced functions failed");
        }
        if shared.registry.fingerprint() != before {
            tracing::info!("synced functions changed on another node");
            crate::cron::schedule_all(&shared).await;
        }
        if let Err(e) = shared.paused.load(shared.store.as_ref()).await {
            tracing::warn!(error = %e, "re-reading paused functions failed");
        }
    }
}
