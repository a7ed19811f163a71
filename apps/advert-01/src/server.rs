//! Starting advert-01: its settings, database and jobs, the HTTP server on
//! 127.0.0.1:3000, and, unless told to use an external engine, the Ingot
//! engine embedded in the same process (dashboard and API on
//! 127.0.0.1:8288, SQLite), pointed at the app's own `/api/inngest` so the
//! app is synced as soon as both listen.
//!
//! Everything is read through one `lookup` function (the process
//! environment in the binary, a map in tests), so a test can start the
//! whole app on port 0 without touching the process environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingot::{Client, Mode};
use ingot_core::backoff::RetryPolicy;
use ingot_engine::{Clock, Engine, EngineConfig};
use ingot_store::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::auth::ApiAccess;
use crate::api::{self, AppState};
use crate::config::{RawSettings, Settings, SettingsError};
use crate::db::{Db, DbError};
use crate::jobs::client::{self, EngineTarget, APP_ID};
use crate::jobs::email::{EmailError, Mailer};
use crate::jobs::webhook::destination::{DestinationPolicy, Destinations, HostResolver, SystemResolver};
use crate::jobs::{self, Deps};
use crate::storage::{ExportStore, StorageError};

/// Where the app listens by default.
pub const DEFAULT_APP_ADDR: &str = "127.0.0.1:3000";
/// Where the embedded engine listens by default.
pub const DEFAULT_ENGINE_ADDR: &str = "127.0.0.1:8288";
/// How long [`Running::wait_synced`] waits by default.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a setting by name.
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A lookup over the process environment.
pub fn process_env() -> Lookup {
    Arc::new(|k| std::env::var(k).ok())
}

/// Which engine runs the app's functions.
#[derive(Debug, Clone)]
pub enum EngineChoice {
    /// Start one in this process.
    Embedded {
        /// Where its API and dashboard listen.
        addr: SocketAddr,
        /// Its SQLite file; `<data dir>/engine.db` when absent.
        db: Option<PathBuf>,
        /// How its retries are spaced.
        retry: RetryPolicy,
    },
    /// Use a running engine (`ingot dev`, `ingot start`, Inngest); `None`
    /// leaves the origin to the `INNGEST_*` variables.
    External {
        /// The engine's origin.
        url: Option<String>,
    },
}

/// How to start.
#[derive(Clone)]
pub struct StartOptions {
    /// Where the app listens.
    pub app_addr: SocketAddr,
    /// Which engine.
    pub engine: EngineChoice,
    /// Where settings come from.
    pub lookup: Lookup,
    /// Resolves webhook destinations ([`system_resolver`] but in tests).
    pub resolver: Arc<dyn HostResolver>,
}

/// The operating system's resolver, for [`StartOptions::resolver`].
pub fn system_resolver() -> Arc<dyn HostResolver> {
    Arc::new(SystemResolver)
}

/// Starting failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Ingot client could not be configured.
    #[error("Ingot client: {0}")]
    Client(#[from] ingot::ConfigError),
    /// An app setting is missing or wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The app's database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The mailer.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// The export storage.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The embedded engine did not start.
    #[error("the embedded engine did not start: {0}")]
    Engine(String),
    /// The engine has not registered the app's functions in time.
    #[error("the app was not synced with the engine at {engine} within {waited:?}: {last}")]
    NotSynced {
        /// The engine.
        engine: String,
        /// How long we waited.
        waited: Duration,
        /// What was last seen.
        last: String,
    },
}

/// The running app (and engine, when embedded).
pub struct Running {
    /// The app's origin, e.g. `http://127.0.0.1:3000`.
    pub app_url: String,
    /// The engine's origin (and dashboard).
    pub engine_url: String,
    /// The app's client.
    pub client: Client,
    /// The jobs' dependencies.
    pub deps: Arc<Deps>,
    /// The embedded engine, if any.
    pub engine: Option<Arc<Engine>>,
    /// How many functions the app serves (with their failure handlers).
    pub function_count: usize,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
}

fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>, what: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "{what} server stopped");
        }
    })
}

/// Builds the jobs' dependencies from settings, resolving webhook
/// destinations with the system resolver.
pub async fn deps(settings: Settings) -> Result<Arc<Deps>, StartError> {
    deps_with(settings, system_resolver()).await
}

/// Builds the jobs' dependencies from settings and a resolver.
pub async fn deps_with(settings: Settings, resolver: Arc<dyn HostResolver>) -> Result<Arc<Deps>, StartError> {
    let db = Db::open(&settings.database).await?;
    let mailer = Mailer::new(&settings.mail)?;
    let exports = ExportStore::new(&settings.export, &settings.export_prefix)?;
    // A name gets as long to resolve as a delivery gets to answer.
    let webhooks = Destinations::new(settings.webhook_destinations, resolver, settings.webhook_timeout);
    Ok(Arc::new(Deps { db, settings, mailer, exports, webhooks }))
}

/// Starts the app, and the engine when embedded.
pub async fn start(opts: StartOptions) -> Result<Running, StartError> {
    let lookup = opts.lookup.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    // The engine's port is bound first so the client knows its real origin
    // (port 0 in tests).
    let (engine_listener, target) = match &opts.engine {
        EngineChoice::Embedded { addr, .. } => {
            let l = bind(*addr).await?;
            let local = l.local_addr().map_err(|source| StartError::Bind { addr: *addr, source })?;
            (Some(l), EngineTarget { base_url: Some(format!("http://{local}")), force_dev: true })
        }
        EngineChoice::External { url } => (None, EngineTarget { base_url: url.clone(), force_dev: false }),
    };
    let client = client::client_from(|k| lookup(k), &target)?;
    let settings = RawSettings::from_lookup(|k| lookup(k)).resolve(client.mode() == Mode::Dev)?;
    if settings.webhook_secret_is_dev {
        tracing::warn!("WEBHOOK_SECRET is not set: webhooks are signed with the public dev secret");
    }
    if matches!(settings.api_access, ApiAccess::Open) {
        tracing::warn!("ADVERT_API_TOKEN is not set: the app API is open to anyone who can reach it (dev mode)");
    }
    if settings.webhook_destinations == DestinationPolicy::AnyAddress {
        tracing::warn!("WEBHOOK_ALLOW_PRIVATE=true: webhooks may go to private and loopback addresses");
    }
    let data_dir = settings.data_dir.clone();
    let deps = deps_with(settings, opts.resolver.clone()).await?;
    let functions = jobs::functions(&deps);
    let function_count = functions.len();
    let engine_url = client.api_origin().to_string();
    let state = AppState { client: client.clone(), deps: deps.clone(), engine_url: engine_url.clone() };
    let app_listener = bind(opts.app_addr).await?;
    let app_addr = app_listener.local_addr().map_err(|source| StartError::Bind { addr: opts.app_addr, source })?;
    let app_url = format!("http://{app_addr}");
    tasks.push(serve(app_listener, api::router(state, functions), stop_rx.clone(), "app"));
    tracing::info!(app = %app_url, mode = client.mode().as_str(), "advert-01 listening");

    let engine = match (&opts.engine, engine_listener) {
        (EngineChoice::Embedded { db, retry, .. }, Some(listener)) => {
            let db_path = db.clone().unwrap_or_else(|| data_dir.join("engine.db"));
            let store = SqliteStore::open(&db_path).await.map_err(|e| StartError::Engine(format!("opening {}: {e}", db_path.display())))?;
            let mut config = EngineConfig::dev();
            config.sdk_urls = vec![format!("{app_url}{}", ingot::serve::DEFAULT_PATH)];
            config.discovery = false;
            // One process: the app cannot change under the engine, so one
            // successful sync is enough (an unsynced URL is still retried).
            config.poll = false;
            config.retry = *retry;
            config.public_url = engine_url.clone();
            let engine = Engine::new(config, Arc::new(store), Clock::system()).await.map_err(|e| StartError::Engine(format!("{e:#}")))?;
            tasks.push(serve(listener, engine.router(), stop_rx.clone(), "engine"));
            engine.start();
            tracing::info!(engine = %engine_url, db = %db_path.display(), "embedded Ingot engine and dashboard listening");
            Some(engine)
        }
        _ => {
            // An external engine learns about the app by its sync: the
            // same as PUT /api/inngest from outside.
            let url = format!("{app_url}{}", ingot::serve::DEFAULT_PATH);
            let sync = reqwest::Client::new().put(&url).send().await;
            match sync {
                Ok(r) if r.status().is_success() => tracing::info!(engine = %engine_url, "synced with the external engine"),
                Ok(r) => {
                    tracing::warn!(status = %r.status(), engine = %engine_url, "sync with the external engine failed; it will sync on its own PUT")
                }
                Err(e) => tracing::warn!(error = %e, "could not sync with the external engine"),
            }
            None
        }
    };
    Ok(Running { app_url, engine_url, client, deps, engine, function_count, shutdown: stop_tx, tasks })
}

impl Running {
    /// Waits until the engine lists every function of the app (bounded);
    /// returns their slugs.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<Vec<String>, StartError> {
        let http = reqwest::Client::new();
        let url = format!("{}/v1/apps/{APP_ID}/functions", self.engine_url);
        let started = Instant::now();
        let mut last;
        loop {
            match http.get(&url).timeout(Duration::from_secs(5)).send().await {
                Ok(r) => {
                    let status = r.status();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    let slugs: Vec<String> = body["data"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|f| f["slug"].as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    if status.is_success() && slugs.len() >= self.function_count {
                        return Ok(slugs);
                    }
                    last = format!("HTTP {status}: {body}");
                }
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() >= timeout {
                return Err(StartError::NotSynced { engine: self.engine_url.clone(), waited: timeout, last });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the servers and the engine's loops, and waits for the servers.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(engine) = &self.engine {
            engine.shutdown();
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}
