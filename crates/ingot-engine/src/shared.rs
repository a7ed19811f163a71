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
