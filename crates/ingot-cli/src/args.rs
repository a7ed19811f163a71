//! Command-line flags (raw), resolved once into the engine's settings. `dev`
//! and `start` take every flag of `inngest dev` and `inngest start`: the ones
//! Ingot has a use for work, the others are hidden from `--help` and ignored
//! with a one-line notice ([`Compat::notices`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use ingot_core::backoff::RetryPolicy;
use ingot_engine::{EngineConfig, Mode};

use crate::client::{CancelArgs, ReplayArgs, RunArgs, RunsArgs, SendArgs};

/// Durable background jobs with the Inngest protocol.
#[derive(Parser)]
#[command(
    name = "ingot",
    version,
    after_help = "Examples:
  ingot dev -u http://localhost:3000/api/inngest
  ingot send app/user.created --data '{\"id\": 1}' --wait
  ingot runs --status Failed
  ingot run 01JABCDEF0123456789ABCDEFG"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes (as `inngest` does), before or after its name.
#[derive(Args)]
pub struct GlobalArgs {
    /// Level of Ingot's logs: trace, debug, info, warn or error (RUST_LOG, when set, wins).
    #[arg(short = 'l', long, global = true, value_parser = ["trace", "debug", "info", "warn", "error"])]
    pub log_level: Option<String>,
    /// Debug logs (the same as `--log-level debug`).
    #[arg(long, global = true)]
    pub verbose: bool,
    /// JSON: log lines of `dev` and `start`, the results of the other commands.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the local dev server (open, on loopback).
    #[command(after_help = DEV_HELP)]
    Dev(DevArgs),
    /// Run the engine for production (event keys and a signing key required).
    #[command(after_help = START_HELP)]
    Start(StartArgs),
    /// Send an event to a running engine, and optionally wait for its runs.
    Send(SendArgs),
    /// List runs, newest first.
    Runs(RunsArgs),
    /// Show one run: its status, output and timeline of steps and attempts.
    Run(RunArgs),
    /// Cancel runs.
    Cancel(CancelArgs),
    /// Send a stored event again, as a new event (its runs start anew).
    Replay(ReplayArgs),
}

const DEV_HELP: &str = "Also accepted, as `inngest dev` takes them, and ignored with a notice: --tick, \
--connect-gateway-port, --connect-gateway-grpc-port, --connect-gateway-grpc-ip, --connect-executor-grpc-port, \
--connect-executor-grpc-ip, --debug-api-port, --system-trace-endpoint, --system-trace-url-path, \
--postgres-max-idle-conns, --postgres-conn-max-idle-time and --postgres-conn-max-lifetime.

Examples:
  ingot dev -u http://localhost:3000/api/inngest
  ingot dev --no-discovery -u http://localhost:3000/api/inngest --log-level debug
  ingot dev --config inngest.yaml --port 9000";

const START_HELP: &str = "Also accepted, as `inngest start` takes them, and ignored with a notice: --tick, --redis-uri, \
--connect-gateway-port, --connect-gateway-grpc-port, --connect-gateway-grpc-ip, --connect-executor-grpc-port, \
--connect-executor-grpc-ip, --postgres-max-idle-conns, --postgres-conn-max-idle-time and \
--postgres-conn-max-lifetime.

Examples:
  ingot start --signing-key \"signkey-prod-$(openssl rand -hex 32)\" --event-key \"$(openssl rand -hex 32)\" \\
    -u https://app.example.com/api/inngest
  INNGEST_SIGNING_KEY=... INNGEST_EVENT_KEY=... ingot start --sqlite-dir /var/lib/ingot --no-ui";

#[derive(Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Do not scan local ports for apps.
    #[arg(long, env = "INNGEST_NO_DISCOVERY")]
    pub no_discovery: bool,
    /// Keep data between restarts (always on: everything is kept in the database).
    #[arg(long, env = "INNGEST_PERSIST")]
    pub persist: bool,
    #[command(flatten)]
    pub compat: Compat,
    #[command(flatten)]
    pub dev_compat: DevCompat,
}

#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Signing key (required): signs calls to apps and authorizes the REST API.
    #[arg(long, env = "INNGEST_SIGNING_KEY")]
    pub signing_key: Option<String>,
    /// Accepted event keys (required; repeatable).
    #[arg(long = "event-key", env = "INNGEST_EVENT_KEY", value_delimiter = ',')]
    pub event_key: Vec<String>,
    /// Accepted as before (`start` never scans for apps).
    #[arg(long = "no-discovery", env = "INNGEST_NO_DISCOVERY", hide = true)]
    pub _no_discovery: bool,
    #[command(flatten)]
    pub compat: Compat,
    /// Redis URI (ignored: Ingot keeps its queue and run state in its database).
    #[arg(long, env = "INNGEST_REDIS_URI", hide = true)]
    pub redis_uri: Option<String>,
}

/// The flags `dev` and `start` share.
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
    /// Do not re-sync apps periodically.
    #[arg(long, env = "INNGEST_NO_POLL")]
    pub no_poll: bool,
    /// Seconds between syncs.
    #[arg(long, env = "INNGEST_POLL_INTERVAL", default_value_t = 5)]
    pub poll_interval: u64,
    /// A fixed retry delay in seconds (0: Inngest's backoff table).
    #[arg(long, env = "INNGEST_RETRY_INTERVAL", default_value_t = 0)]
    pub retry_interval: u64,
    /// SQLite database file [default: .ingot/ingot.db, or ingot.db in --sqlite-dir].
    #[arg(long, env = "INGOT_DB")]
    pub db: Option<PathBuf>,
    /// Directory of the SQLite database (the file is ingot.db in it; --db wins).
    #[arg(long, env = "INNGEST_SQLITE_DIR")]
    pub sqlite_dir: Option<PathBuf>,
    /// Store everything in this PostgreSQL database instead of SQLite
    /// (postgres://user:pass@host:5432/db); several engines may share it.
    #[arg(long, env = "INNGEST_POSTGRES_URI")]
    pub postgres_uri: Option<String>,
    /// Most pooled PostgreSQL connections (reads and claims; the writer and
    /// the listener have one each).
    #[arg(long, env = "INNGEST_POSTGRES_MAX_OPEN_CONNS", default_value_t = 16)]
    pub postgres_max_open_conns: u32,
    /// With PostgreSQL: how long a node's claim on an item lasts unless the
    /// node renews it (it does, every third of this, while it lives); the
    /// work of a node that died is taken by the others after this.
    #[arg(long, env = "INGOT_POSTGRES_LEASE_SECS", default_value_t = 30)]
    pub postgres_lease_secs: u64,
    /// Most SDK calls in flight at once.
    #[arg(long, env = "INNGEST_QUEUE_WORKERS", default_value_t = 256)]
    pub queue_workers: usize,
    /// Days to keep finished runs and events.
    #[arg(long, env = "INGOT_RETENTION_DAYS", default_value_t = 7)]
    pub retention_days: u64,
    /// Serve no dashboard and no GraphQL API (the REST and event APIs stay).
    #[arg(long, env = "INNGEST_NO_UI")]
    pub no_ui: bool,
    /// A JSON or YAML file of flags (`port: 9000`, `sdk-url: [...]`); flags and
    /// environment variables win [default: the first inngest.json, inngest.yaml
    /// or inngest.yml in this directory or above, then in ~/.config/inngest].
    #[arg(long, env = "INNGEST_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `inngest dev` and `inngest start` that have no meaning in Ingot:
/// accepted so scripts written for Inngest run, and ignored with a notice.
#[derive(Args)]
pub struct Compat {
    /// Queue poll interval in ms (ignored: workers wake at the next due item).
    #[arg(long, env = "INNGEST_TICK", hide = true)]
    pub tick: Option<u64>,
    #[arg(long, env = "INNGEST_CONNECT_GATEWAY_PORT", hide = true)]
    pub connect_gateway_port: Option<u16>,
    #[arg(long, env = "INNGEST_CONNECT_GATEWAY_GRPC_PORT", hide = true)]
    pub connect_gateway_grpc_port: Option<u16>,
    #[arg(long, env = "INNGEST_CONNECT_GATEWAY_GRPC_IP", hide = true)]
    pub connect_gateway_grpc_ip: Option<String>,
    #[arg(long, env = "INNGEST_CONNECT_EXECUTOR_GRPC_PORT", hide = true)]
    pub connect_executor_grpc_port: Option<u16>,
    #[arg(long, env = "INNGEST_CONNECT_EXECUTOR_GRPC_IP", hide = true)]
    pub connect_executor_grpc_ip: Option<String>,
    #[arg(long, env = "INNGEST_POSTGRES_MAX_IDLE_CONNS", hide = true)]
    pub postgres_max_idle_conns: Option<u32>,
    #[arg(long, env = "INNGEST_POSTGRES_CONN_MAX_IDLE_TIME", hide = true)]
    pub postgres_conn_max_idle_time: Option<u32>,
    #[arg(long, env = "INNGEST_POSTGRES_CONN_MAX_LIFETIME", hide = true)]
    pub postgres_conn_max_lifetime: Option<u32>,
}

/// Hidden flags of `inngest dev` only.
#[derive(Args)]
pub struct DevCompat {
    #[arg(long, env = "INNGEST_DEBUG_API_PORT", hide = true)]
    pub debug_api_port: Option<u16>,
    #[arg(long, env = "INNGEST_SYSTEM_TRACE_ENDPOINT", hide = true)]
    pub system_trace_endpoint: Option<String>,
    #[arg(long, env = "INNGEST_SYSTEM_TRACE_URL_PATH", hide = true)]
    pub system_trace_url_path: Option<String>,
}

const CONNECT: &str = "ignored: Ingot has no Connect gateway (apps are called over HTTP)";
const POSTGRES: &str = "ignored: the PostgreSQL pool keeps up to --postgres-max-open-conns connections and recycles broken ones";

impl Compat {
    /// One line per ignored flag that was given.
    fn notices(&self) -> Vec<String> {
        let given: [(&str, bool, &str); 9] = [
            ("--tick", self.tick.is_some(), "ignored: Ingot's queue is not polled (workers wake at the next due item)"),
            ("--connect-gateway-port", self.connect_gateway_port.is_some(), CONNECT),
            ("--connect-gateway-grpc-port", self.connect_gateway_grpc_port.is_some(), CONNECT),
            ("--connect-gateway-grpc-ip", self.connect_gateway_grpc_ip.is_some(), CONNECT),
            ("--connect-executor-grpc-port", self.connect_executor_grpc_port.is_some(), CONNECT),
            ("--connect-executor-grpc-ip", self.connect_executor_grpc_ip.is_some(), CONNECT),
            ("--postgres-max-idle-conns", self.postgres_max_idle_conns.is_some(), POSTGRES),
            ("--postgres-conn-max-idle-time", self.postgres_conn_max_idle_time.is_some(), POSTGRES),
            ("--postgres-conn-max-lifetime", self.postgres_conn_max_lifetime.is_some(), POSTGRES),
        ];
        given.iter().filter(|(_, set, _)| *set).map(|(flag, _, why)| format!("{flag}: {why}")).collect()
    }
}

impl DevCompat {
    fn notices(&self) -> Vec<String> {
        let given = [
            ("--debug-api-port", self.debug_api_port.is_some(), "ignored: Ingot has no separate debug API"),
            ("--system-trace-endpoint", self.system_trace_endpoint.is_some(), "ignored: Ingot does not export its own traces"),
            ("--system-trace-url-path", self.system_trace_url_path.is_some(), "ignored: Ingot does not export its own traces"),
        ];
        given.iter().filter(|(_, set, _)| *set).map(|(flag, _, why)| format!("{flag}: {why}")).collect()
    }
}

/// Where the engine keeps its state.
pub enum StoreChoice {
    /// The SQLite file (the default).
    Sqlite(PathBuf),
    /// A PostgreSQL database several engines may share.
    Postgres { uri: String, max_conns: usize, lease: Duration },
}

impl StoreChoice {
    /// What to print: the file, or the database without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreChoice::Sqlite(db) => db.display().to_string(),
            StoreChoice::Postgres { uri, .. } => match reqwest::Url::parse(uri) {
                Ok(mut u) if u.password().is_some() => {
                    let _ = u.set_password(Some("***"));
                    u.to_string()
                }
                Ok(u) => u.to_string(),
                Err(_) => "PostgreSQL".into(),
            },
        }
    }
}

/// The settings of `dev` or `start`, validated.
pub struct Resolved {
    pub host: String,
    pub port: u16,
    pub store: StoreChoice,
    pub ui: Ui,
    pub engine: EngineConfig,
    /// One line per flag that was accepted and ignored.
    pub notices: Vec<String>,
}

/// Whether the dashboard and the GraphQL API are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ui {
    Served,
    Off,
}

impl DevArgs {
    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let mut notices = self.compat.notices();
        notices.extend(self.dev_compat.notices());
        if self.persist {
            notices.push("--persist: always on: runs and events are kept in the database (--db)".into());
        }
        let mut r = self.serve.resolve(Mode::Dev, None, Vec::new(), notices)?;
        r.engine.discovery = !self.no_discovery;
        r.engine.validate()?;
        Ok(r)
    }
}

impl StartArgs {
    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let mut notices = self.compat.notices();
        if self.redis_uri.is_some() {
            notices.push("--redis-uri: ignored: Ingot keeps its queue and run state in its database".into());
        }
        let mut r = self.serve.resolve(Mode::Start, self.signing_key, self.event_key, notices)?;
        r.engine.discovery = false;
        r.engine.validate()?;
        Ok(r)
    }
}

impl ServeArgs {
    /// Validates the shared flags and applies defaults (the caller validates
    /// the whole config once its own flags are in).
    fn resolve(self, mode: Mode, signing_key: Option<String>, event_keys: Vec<String>, notices: Vec<String>) -> anyhow::Result<Resolved> {
        for u in &self.sdk_url {
            reqwest::Url::parse(u).with_context(|| format!("--sdk-url {u:?} is not a URL"))?;
        }
        let mut engine = EngineConfig::dev();
        engine.mode = mode;
        engine.retry =
            if self.retry_interval == 0 { RetryPolicy::Table } else { RetryPolicy::Fixed(Duration::from_secs(self.retry_interval)) };
        engine.sdk_urls = self.sdk_url;
        engine.poll = !self.no_poll;
        engine.poll_interval = Duration::from_secs(self.poll_interval.max(1));
        engine.signing_key = signing_key;
        engine.event_keys = event_keys;
        engine.workers = self.queue_workers.max(1);
        engine.public_url = format!("http://{}:{}", self.host, self.port);
        engine.otlp = ingot_engine::traces::OtlpConfig::from_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
        engine.retention = Duration::from_secs(self.retention_days.max(1) * 24 * 3600);
        let store = match (self.postgres_uri.filter(|u| !u.trim().is_empty()), self.db, self.sqlite_dir) {
            (Some(uri), None, None) => StoreChoice::Postgres {
                uri,
                max_conns: self.postgres_max_open_conns.max(1) as usize,
                lease: Duration::from_secs(self.postgres_lease_secs.max(1)),
            },
            (Some(_), _, _) => bail!("--postgres-uri and --db/--sqlite-dir name two databases: give one"),
            (None, Some(db), _) => StoreChoice::Sqlite(db),
            (None, None, Some(dir)) => StoreChoice::Sqlite(dir.join("ingot.db")),
            (None, None, None) => StoreChoice::Sqlite(PathBuf::from(".ingot").join("ingot.db")),
        };
        let ui = if self.no_ui { Ui::Off } else { Ui::Served };
        Ok(Resolved { host: self.host, port: self.port, store, ui, engine, notices })
    }
}
