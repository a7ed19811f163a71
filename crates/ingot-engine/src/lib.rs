//! Ingot's imperative shell: it receives events and syncs, calls SDK apps,
//! feeds what happened to the pure core, and commits the effects.
//!
//! **Architecture invariant:** the shell decides nothing about a run itself;
//! every run transition goes through [`ingot_core::decide`], every start
//! through [`ingot_core::start::plan_start`].
//!
//! The engine is a handful of services over [`shared::Shared`] (settings,
//! store, registry, clock): [`ingest::Ingest`] accepts events,
//! [`starter::Starter`] turns start plans into writes, [`worker::Worker`] runs
//! queued work, [`sync::AppSync`] syncs apps, and the API reads through
//! [`queries::Queries`].

pub mod api;
pub mod backlog;
pub mod clock;
pub mod config;
pub mod cron;
pub mod driver;
pub mod effects;
pub mod error;
pub mod gateway;
pub mod ingest;
pub mod limiter;
pub mod metrics;
pub mod queries;
pub mod registry;
mod retention;
pub mod sessions;
pub mod shared;
pub mod starter;
pub mod sync;
pub mod traces;
pub mod worker;

use std::sync::Arc;

use ingot_store::Store;
use tokio::sync::watch;

pub use clock::Clock;
pub use config::{EngineConfig, Mode};
pub use error::EngineError;

use shared::{Paused, Shared};

/// The running engine: its services, and the switch that stops their loops.
pub struct Engine {
    shared: Arc<Shared>,
    /// Accepts events.
    pub ingest: Arc<ingest::Ingest>,
    /// Starts runs (reruns from the API).
    pub starter: Arc<starter::Starter>,
    /// Runs queued work; cancels and checkpoints from the API.
    pub worker: Arc<worker::Worker>,
    /// Syncs apps.
    pub sync: Arc<sync::AppSync>,
    /// What the API reads.
    pub queries: queries::Queries,
    /// Dashboard sessions.
    pub sessions: sessions::Sessions,
    /// Change notices for live views (`GET /v1/stream`).
    pub live: api::live::Hub,
    shutdown: watch::Sender<bool>,
}

impl Engine {
    /// Builds an engine on `store`; call [`Engine::start`] to run its loops.
    pub async fn new(config: EngineConfig, store: Arc<dyn Store>, clock: Clock) -> error::Result<Arc<Engine>> {
        config.validate()?;
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).timeout(config.call_timeout).build()?;
        let gateway = gateway::Gateway::new(config.gateway_timeout, config.gateway_private_allowed())?;
        let metrics = Arc::new(metrics::Metrics::new());
        let traces = match &config.otlp {
            Some(otlp) => traces::Traces::start(otlp, metrics.clone()).map_err(EngineError::Telemetry)?,
            None => traces::Traces::off(),
        };
        let shared = Arc::new(Shared {
            config,
            store,
            registry: registry::Registry::default(),
            clock,
            http,
            gateway,
            paused: Paused::default(),
            metrics,
            traces,
            backlog: backlog::Backlog::default(),
        });
        shared.registry.reload(shared.store.as_ref()).await?;
        shared.paused.load(shared.store.as_ref()).await?;
        let starter = Arc::new(starter::Starter::new(shared.clone()));
        let ingest = Arc::new(ingest::Ingest::new(shared.clone(), starter.clone()));
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Engine {
            worker: Arc::new(worker::Worker::new(shared.clone(), ingest.clone(), starter.clone())),
            sync: Arc::new(sync::AppSync::new(shared.clone())),
            queries: queries::Queries::new(shared.clone()),
            sessions: sessions::Sessions::new(shared.clone()),
            live: api::live::Hub::default(),
            ingest,
            starter,
            shared,
            shutdown,
        }))
    }

    /// Starts the queue workers, the sync loop and the retention loop.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(self.worker.clone().dispatch(self.shutdown.subscribe()));
        tokio::spawn(sync::sync_loop(self.sync.clone(), self.shutdown.subscribe()));
        tokio::spawn(retention::retention_loop(self.shared.clone(), self.shutdown.subscribe()));
        tokio::spawn(backlog::sample_loop(self.shared.clone(), self.shutdown.subscribe()));
        if self.shared.store.shared_by_nodes() {
            tokio::spawn(shared::follow_other_nodes(self.shared.clone(), self.shutdown.subscribe()));
        }
    }

    /// Asks the loops to stop; in-flight work is abandoned and resumes on restart.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Pauses or resumes a function, durably; returns whether that changed anything.
    pub async fn set_paused(&self, slug: &str, paused: bool) -> error::Result<bool> {
        self.shared.paused.set(self.shared.store.as_ref(), slug, paused).await
    }

    /// The engine's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    /// Sends every span recorded so far to the OTLP exporter and waits for it.
    pub async fn flush_traces(&self) {
        self.shared.traces.flush().await
    }

    /// The HTTP API.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        api::router(self.clone())
    }
}
