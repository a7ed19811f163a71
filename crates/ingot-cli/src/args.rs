//! Command-line flags (raw), resolved once into the engine's settings.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use ingot_core::backoff::RetryPolicy;
use ingot_engine::{EngineConfig, Mode};

/// Durable background jobs with the Inngest protocol.
#[derive(Parser)]
#[command(name = "ingot", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the local dev server (open, on loopback).
    Dev(ServeArgs),
    /// Run the engine for production (event keys and a signing key required).
    Start(ServeArgs),
    /// Send an event to a running engine.
    Send(SendArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Port to listen on.
    #[arg(short, long, env = "INNGEST_PORT", default_value_t = 8288)]
    pub port: u16,
    /// Host to bind.
    #[arg(long, env = "INNGEST_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// App URLs to sync (repeatable).
    #[arg(short = 'u', long = "sdk-url", env = "INNGEST_SDK_URL", value_delimiter = ',')]
    pub sdk_url: Vec<String>,
    /// Do not scan local ports for apps.
    #[arg(long, env = "INNGEST_NO_DISCOVERY")]
    pub no_discovery: bool,
    /// Do not re-sync apps periodically.
    #[arg(long, env = "INNGEST_NO_POLL")]
    pub no_poll: bool,
    /// Seconds between syncs.
    #[arg(long, env = "INNGEST_POLL_INTERVAL", default_value_t = 5)]
    pub poll_interval: u64,
    /// A fixed retry delay in seconds (0: Inngest's backoff table).
    #[arg(long, env = "INNGEST_RETRY_INTERVAL", default_value_t = 0)]
    pub retry_interval: u64,
    /// SQLite database file.
    #[arg(long, env = "INGOT_DB")]
    pub db: Option<PathBuf>,
    /// Signing key (required by `start`).
    #[arg(long, env = "INNGEST_SIGNING_KEY")]
    pub signing_key: Option<String>,
    /// Accepted event keys (required by `start`; repeatable).
    #[arg(long = "event-key", env = "INNGEST_EVENT_KEY", value_delimiter = ',')]
    pub event_key: Vec<String>,
    /// Most SDK calls in flight at once.
    #[arg(long, env = "INGOT_QUEUE_WORKERS", default_value_t = 256)]
    pub queue_workers: usize,
    /// Days to keep finished runs and events.
    #[arg(long, env = "INGOT_RETENTION_DAYS", default_value_t = 7)]
    pub retention_days: u64,
}

pub struct Resolved {
    pub host: String,
    pub port: u16,
    pub db: PathBuf,
    pub engine: EngineConfig,
}

impl ServeArgs {
    /// Validates the flags and applies defaults.
    pub fn resolve(self, mode: Mode) -> anyhow::Result<Resolved> {
        for u in &self.sdk_url {
            reqwest::Url::parse(u).with_context(|| format!("--sdk-url {u:?} is not a URL"))?;
        }
        let mut engine = EngineConfig::dev();
        engine.mode = mode;
        engine.retry =
            if self.retry_interval == 0 { RetryPolicy::Table } else { RetryPolicy::Fixed(Duration::from_secs(self.retry_interval)) };
        engine.sdk_urls = self.sdk_url;
        engine.discovery = !self.no_discovery && mode == Mode::Dev;
        engine.poll = !self.no_poll;
        engine.poll_interval = Duration::from_secs(self.poll_interval.max(1));
        engine.signing_key = self.signing_key;
        engine.event_keys = self.event_key;
        engine.workers = self.queue_workers.max(1);
        engine.public_url = format!("http://{}:{}", self.host, self.port);
        engine.retention = Duration::from_secs(self.retention_days.max(1) * 24 * 3600);
        engine.validate()?;
        let db = self.db.unwrap_or_else(|| PathBuf::from(".ingot").join("ingot.db"));
        Ok(Resolved { host: self.host, port: self.port, db, engine })
    }
}

#[derive(Args)]
pub struct SendArgs {
    /// Event name.
    pub name: String,
    /// Event data (a JSON object).
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// The engine's URL.
    #[arg(long, env = "INNGEST_BASE_URL", default_value = "http://127.0.0.1:8288")]
    pub url: String,
    /// Event key.
    #[arg(long, env = "INNGEST_EVENT_KEY", default_value = "dev")]
    pub key: String,
}

/// `ingot send NAME --data JSON`.
pub async fn send(a: SendArgs) -> anyhow::Result<()> {
    let data: serde_json::Value = serde_json::from_str(&a.data).context("--data must be JSON")?;
    let url = format!("{}/e/{}", a.url.trim_end_matches('/'), a.key);
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({"name": a.name, "data": data}))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("the engine refused the event: HTTP {status}: {body}");
    }
    println!("{body}");
    Ok(())
}
