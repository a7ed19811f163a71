//! What every service reads: the settings, the store, the compiled
//! functions, the clock, the outgoing HTTP client and the paused flags.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use ingot_store::{Commit, Store, WriteOp};

use crate::error::Result;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::traces::Traces;
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
    /// Counted in the shell: here, in the worker and in the driver's caller.
    pub metrics: Arc<Metrics>,
    /// Run and step spans, when OTLP export is on.
    pub traces: Traces,
    /// The queue's last hour, for the Runs page.
    pub backlog: crate::backlog::Backlog,
}

impl Shared {
    /// Commits `ops` as one commit, and counts what it did once it is stored.
    pub async fn commit(&self, ops: Vec<WriteOp>) -> Result<ingot_store::CommitOutcome> {
        let started = std::time::Instant::now();
        // The ops move into the commit: what to count is noted first (names, not payloads).
        let tally = Metrics::tally(&ops);
        let count = ops.len();
        match self.store.commit(Commit { ops }).await {
            Ok(outcome) => {
                self.metrics.committed(&tally, count, &outcome.guards_passed, started.elapsed());
                Ok(outcome)
            }
            Err(e) => {
                self.metrics.commit_failed(&e);
                Err(e.into())
            }
        }
    }
}

impl Shared {
    /// An item due at `due_ms` was claimed at `now_ms`.
    pub fn claimed(&self, due_ms: i64, now_ms: i64) {
        self.metrics.claimed(due_ms, now_ms);
        self.backlog.claimed(now_ms - due_ms);
    }

    /// Counts one SDK call of `run` and records its spans.
    pub fn observe_call(
        &self,
        run: &ingot_store::RunRecord,
        events: &[serde_json::Value],
        step_id: &str,
        attempt: u32,
        started: std::time::SystemTime,
        outcome: &crate::driver::CallOutcome,
    ) {
        self.metrics.observe_call(run.state.function.as_str(), &outcome.reply, outcome.status, outcome.duration);
        self.traces.record_call(&crate::traces::CallSpan {
            state: &run.state,
            event_id: run.event_ids.first().map(|e| e.to_string()),
            event: events.first(),
            step_id,
            attempt,
            started,
            took: outcome.duration,
            reply: &outcome.reply,
        });
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
