//! Ingot's imperative shell: it receives events and syncs, calls SDK apps,
//! feeds what happened to the pure core, and commits the effects.
//!
//! **Architecture invariant:** the shell decides nothing about a run itself;
//! every run transition goes through [`ingot_core::decide`].

pub mod api;
pub mod clock;
pub mod config;
pub mod cron;
pub mod driver;
pub mod effects;
pub mod flow;
pub mod ingest;
pub mod limiter;
pub mod registry;
pub mod sync;
pub mod worker;

use std::sync::Arc;

use ingot_store::Store;
use tokio::sync::watch;

pub use clock::Clock;
pub use config::{EngineConfig, Mode};

/// The shared state every part of the engine reads.
pub struct Engine {
    pub config: EngineConfig,
    pub store: Arc<dyn Store>,
    pub registry: registry::Registry,
    pub clock: Clock,
    pub http: reqwest::Client,
    pub limiter: limiter::Limiter,
    /// Runs with a start timeout whose first call has been sent (they have started).
    pub(crate) started: std::sync::Mutex<std::collections::HashSet<ingot_core::RunId>>,
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    pub(crate) sync_state: sync::SyncState,
    /// Change notices for live views (`GET /v1/stream`).
    pub live: api::live::Hub,
    /// Functions paused from the dashboard: they start no new runs.
    paused: std::sync::RwLock<std::collections::HashSet<String>>,
    shutdown: watch::Sender<bool>,
}

impl Engine {
    /// Builds an engine on `store`; call [`Engine::start`] to run its loops.
    pub async fn new(config: EngineConfig, store: Arc<dyn Store>, clock: Clock) -> anyhow::Result<Arc<Engine>> {
        config.validate()?;
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).timeout(config.call_timeout).build()?;
        let (shutdown, _) = watch::channel(false);
        let workers = config.workers.max(1);
        let engine = Arc::new(Engine {
            sync_state: sync::SyncState::new(&config.sdk_urls),
            config,
            store,
            registry: registry::Registry::default(),
            limiter: limiter::Limiter::default(),
            started: Default::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(workers)),
            clock,
            http,
            live: api::live::Hub::default(),
            paused: Default::default(),
            shutdown,
        });
        engine.registry.reload(engine.store.as_ref()).await?;
        *engine.paused.write().unwrap_or_else(|e| e.into_inner()) = engine.store.paused_functions().await?.into_iter().collect();
        Ok(engine)
    }

    /// Starts the queue workers and the sync loop.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(worker::dispatch(self.clone(), self.shutdown.subscribe()));
        tokio::spawn(sync::sync_loop(self.clone(), self.shutdown.subscribe()));
        tokio::spawn(retention_loop(self.clone(), self.shutdown.subscribe()));
    }

    /// Asks the loops to stop; in-flight work is abandoned and resumes on restart.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Whether the function `slug` is paused (starts no new runs).
    pub fn is_paused(&self, slug: &str) -> bool {
        self.paused.read().unwrap_or_else(|e| e.into_inner()).contains(slug)
    }

    /// Pauses or resumes a function, durably; returns whether that changed anything.
    pub async fn set_paused(&self, slug: &str, paused: bool) -> Result<bool, ingot_store::StoreError> {
        let op = ingot_store::WriteOp::SetPaused { slug: slug.to_string(), paused };
        self.store.commit(ingot_store::Commit { ops: vec![op] }).await?;
        let mut set = self.paused.write().unwrap_or_else(|e| e.into_inner());
        Ok(if paused { set.insert(slug.to_string()) } else { set.remove(slug) })
    }

    /// The HTTP API.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        api::router(self.clone())
    }
}

/// Most rows of each kind one retention pass deletes. A pass is one commit on
/// the store's single writer, so it is sized to hold the writer briefly:
/// `ingot-bench --only retention` timed a pass of 500 three-step runs (and
/// their events) at ~16–32 ms on a loaded 2-core machine, 2,000 at ~130 ms.
const PURGE_BATCH: usize = 500;
/// Longest wait between passes once one found less than a batch to delete.
const PURGE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Deletes finished runs, old events and dead state past the retention
/// period, continuously: while a pass reaches its limit the next starts at
/// once (other commits still get the writer between passes); otherwise it
/// waits [`PURGE_IDLE`], or a quarter of the retention period if that is
/// shorter (tests and the benchmark use seconds).
async fn retention_loop(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let retention = engine.config.retention;
    let idle = (retention / 4).clamp(std::time::Duration::from_millis(100), PURGE_IDLE);
    while !*shutdown.borrow() {
        let now_ms = engine.clock.now_ms();
        let before_ms = now_ms - retention.as_millis() as i64;
        let purge = ingot_store::Commit { ops: vec![ingot_store::WriteOp::Purge { now_ms, before_ms, limit: PURGE_BATCH }] };
        let more = match engine.store.commit(purge).await {
            Ok(out) => {
                let p = out.purged;
                if p.runs + p.events + p.expired > 0 {
                    tracing::debug!(runs = p.runs, events = p.events, expired = p.expired, more = p.more, "retention pass");
                }
                p.more
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention purge failed");
                false
            }
        };
        if more {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = shutdown.changed() => return,
        }
    }
}
