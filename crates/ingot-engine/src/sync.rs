//! App sync: pinging apps with `PUT` so they register, handling `POST
//! /fn/register`, auto-discovery of local apps, and polling. It owns the set
//! of app URLs the engine pings.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ingot_core::FunctionSlug;
use ingot_protocol::sync::RegisterRequest;
use ingot_store::{AppRecord, Commit, FunctionRecord, WriteOp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::{EngineError, Result};
use crate::registry;
use crate::shared::Shared;

/// Ports probed by auto-discovery, as the Inngest dev server.
pub const DISCOVERY_PORTS: &[u16] = &[
    80, 443, 3000, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010, 4321, 5000, 5173, 8000, 8080, 8081, 8787, 8888, 8910, 8911,
    8912, 8913, 8914, 8915,
];
/// Paths probed on each open port.
pub const DISCOVERY_PATHS: &[&str] = &["/api/inngest", "/x/inngest", "/.netlify/functions/inngest", "/.redwood/functions/inngest"];

/// Syncs apps.
pub struct AppSync {
    shared: Arc<Shared>,
    urls: Urls,
}

/// URLs the engine pings.
struct Urls {
    urls: Mutex<BTreeSet<String>>,
}

impl Urls {
    fn new(urls: &[String]) -> Urls {
        Urls { urls: Mutex::new(urls.iter().cloned().collect()) }
    }

    fn add(&self, url: &str) -> bool {
        self.urls.lock().unwrap_or_else(|e| e.into_inner()).insert(url.to_string())
    }

    fn all(&self) -> Vec<String> {
        self.urls.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

/// Why a register was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("invalid register body: {0}")]
    Invalid(String),
    #[error("the app expects a {expected} server, but this is a {actual} server")]
    KindMismatch { expected: String, actual: String },
    #[error("function {function:?} belongs to app {owner:?}; app {app:?} cannot register it")]
    Owned { function: String, owner: String, app: String },
    #[error("storage: {0}")]
    Store(#[from] ingot_store::StoreError),
}

/// What a register did.
pub struct Registered {
    pub modified: bool,
    pub app_id: String,
}

/// A stable UUID-shaped id derived from a name.
pub fn stable_uuid(name: &str) -> String {
    let h = Sha256::digest(name.as_bytes());
    let x = hex::encode(&h[..16]);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

impl AppSync {
    pub fn new(shared: Arc<Shared>) -> AppSync {
        let urls = Urls::new(&shared.config.sdk_urls);
        AppSync { shared, urls }
    }

    /// Handles a register body from an SDK.
    pub async fn register(&self, body: &[u8], expected_kind: Option<&str>) -> Result<Registered, SyncError> {
        if let Some(kind) = expected_kind.filter(|k| !k.is_empty()) {
            let actual = self.shared.config.mode.server_kind();
            if kind != actual {
                return Err(SyncError::KindMismatch { expected: kind.to_string(), actual: actual.to_string() });
            }
        }
        let mut raw: Value = serde_json::from_slice(body).map_err(|e| SyncError::Invalid(format!("not JSON: {e}")))?;
        if let Some(obj) = raw.as_object_mut() {
            obj.remove("featureObservations");
        }
        let checksum = hex::encode(Sha256::digest(serde_jcs::to_vec(&raw).unwrap_or_default()));
        let req: RegisterRequest = serde_json::from_value(raw.clone()).map_err(|e| SyncError::Invalid(e.to_string()))?;
        if req.app_name.trim().is_empty() {
            return Err(SyncError::Invalid("appName is empty".into()));
        }
        let now = self.shared.clock.now_ms();
        let apps = self.shared.store.apps().await?;
        if let Some(existing) = apps.iter().find(|a| a.id == req.app_name) {
            if existing.checksum.as_deref() == Some(checksum.as_str()) && existing.error.is_none() && existing.url == req.url {
                return Ok(Registered { modified: false, app_id: stable_uuid(&req.app_name) });
            }
        }
        let raw_functions = raw.get("functions").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut records = Vec::new();
        for (f, raw_f) in req.functions.iter().zip(raw_functions) {
            if f.id.trim().is_empty() {
                return Err(SyncError::Invalid("a function has an empty id".into()));
            }
            if f.triggers.is_empty() {
                return Err(SyncError::Invalid(format!("function {} has no triggers", f.id)));
            }
            if f.url().is_none() {
                return Err(SyncError::Invalid(format!("function {} has no step URL", f.id)));
            }
            // A registration replaces only its own app's functions: another
            // app reusing an id must not move that function (and its calls).
            if let Some(existing) = self.shared.registry.get(&f.id).filter(|e| e.record.app_id != req.app_name) {
                return Err(SyncError::Owned { function: f.id.clone(), owner: existing.record.app_id.clone(), app: req.app_name.clone() });
            }
            let record = FunctionRecord {
                slug: FunctionSlug(f.id.clone()),
                app_id: req.app_name.clone(),
                uuid: stable_uuid(&f.id),
                name: f.display_name().to_string(),
                config: raw_f,
                archived: false,
                updated_at_ms: now,
            };
            registry::compile(record.clone()).map_err(SyncError::Invalid)?;
            records.push(record);
        }
        let app = AppRecord {
            id: req.app_name.clone(),
            url: req.url.clone(),
            sdk: req.sdk.clone(),
            framework: req.framework.clone(),
            checksum: Some(checksum),
            error: None,
            synced_at_ms: now,
        };
        self.shared
            .store
            .commit(Commit {
                ops: vec![WriteOp::UpsertApp(app), WriteOp::SyncFunctions { app_id: req.app_name.clone(), functions: records }],
            })
            .await?;
        self.shared.registry.reload(self.shared.store.as_ref()).await.map_err(|e| SyncError::Invalid(e.to_string()))?;
        crate::cron::schedule_all(&self.shared).await;
        self.urls.add(&req.url);
        tracing::info!(app = %req.app_name, functions = req.functions.len(), "app synced");
        Ok(Registered { modified: true, app_id: stable_uuid(&req.app_name) })
    }

    /// Asks the app at `url` to sync (`PUT`), recording an error on failure.
    async fn ping(&self, url: &str) -> Result<(), String> {
        let body = json!({ "url": url }).to_string();
        let mut req = self
            .shared
            .http
            .put(url)
            .header("X-Inngest-Server-Kind", self.shared.config.mode.server_kind())
            .header("Content-Type", "application/json")
            .timeout(Duration::from_secs(30));
        // Signed like a call, so an app in cloud mode can trust the sync.
        if let Some(key) = self.shared.config.signing_key.as_deref() {
            let signature = ingot_protocol::signature::sign(body.as_bytes(), key, self.shared.clock.now_ms() / 1000);
            req = req.header("X-Inngest-Signature", signature);
        }
        let result = req.body(body).send().await;
        let error = match result {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => {
                let status = resp.status();
                let body = crate::driver::read_capped(resp, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).into_owned());
                Some(format!("sync failed: HTTP {status}: {}", body.unwrap_or_default().chars().take(500).collect::<String>()))
            }
            Err(e) => Some(format!("unreachable: {e}")),
        };
        if let Ok(apps) = self.shared.store.apps().await {
            for app in apps.into_iter().filter(|a| a.url == url && a.error != error) {
                let _ = self.shared.store.commit(Commit { ops: vec![WriteOp::SetAppError { app_id: app.id, error: error.clone() }] }).await;
            }
        }
        match error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Re-syncs the app with id `app_id`.
    pub async fn resync(&self, app_id: &str) -> Result<()> {
        let apps = self.shared.store.apps().await?;
        let app = apps.into_iter().find(|a| a.id == app_id).ok_or_else(|| EngineError::NotFound(format!("app {app_id:?} not found")))?;
        self.ping(&app.url).await.map_err(|e| EngineError::Refused(format!("the app at {} did not sync: {e}", app.url)))
    }

    /// Adds an app URL and pings it.
    pub async fn add_app_url(&self, url: &str) -> Result<()> {
        self.urls.add(url);
        self.ping(url).await.map_err(|e| EngineError::Refused(format!("the app at {url} did not sync: {e}")))
    }

    async fn discover(&self) {
        for port in DISCOVERY_PORTS {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            let open = tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await;
            if !matches!(open, Ok(Ok(_))) {
                continue;
            }
            for path in DISCOVERY_PATHS {
                let url = format!("http://127.0.0.1:{port}{path}");
                let resp = self.shared.http.get(&url).timeout(Duration::from_secs(2)).send().await;
                if matches!(&resp, Ok(r) if r.headers().contains_key("x-inngest-sdk")) && self.urls.add(&url) {
                    tracing::info!(%url, "discovered an app");
                    let _ = self.ping(&url).await;
                }
            }
        }
    }
}

/// Pings known apps now and every poll interval; discovers apps until one syncs.
pub async fn sync_loop(sync: Arc<AppSync>, mut shutdown: watch::Receiver<bool>) {
    let mut first = true;
    let config = &sync.shared.config;
    loop {
        let synced: BTreeSet<String> = sync
            .shared
            .store
            .apps()
            .await
            .map(|a| a.into_iter().filter(|a| a.error.is_none()).map(|a| a.url).collect())
            .unwrap_or_default();
        for url in sync.urls.all() {
            if first || config.poll || !synced.contains(&url) {
                let sync = sync.clone();
                tokio::spawn(async move {
                    if let Err(e) = sync.ping(&url).await {
                        tracing::debug!(%url, error = %e, "app did not sync");
                    }
                });
            }
        }
        if config.discovery && synced.is_empty() {
            sync.discover().await;
        }
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(config.poll_interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}
