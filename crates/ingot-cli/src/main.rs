//! The `ingot` binary: `ingot dev` and `ingot start` run the engine;
//! `send`, `runs`, `run`, `cancel` and `replay` talk to a running one over
//! its REST API (`client.rs`).

mod args;
mod client;
mod config_file;
mod output;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clap::{CommandFactory, FromArgMatches};
use ingot_engine::{Clock, Engine};
use ingot_store::{SqliteStore, Store, StoreError};
use ingot_store_postgres::{PgOptions, PgStore};

use args::{Cli, Command, GlobalArgs, Resolved, StoreChoice, Ui};
use client::Output;

fn main() {
    // Errors are one line (`error: what: why`) and exit 1.
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = Cli::command();
    let first = command.clone().get_matches_from(argv.clone());
    let (argv, mut notices) = config_file::apply(&command, &first, argv)?;
    let matches = command.get_matches_from(argv);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logs(&cli.global);
    let output = if cli.global.json { Output::Json } else { Output::Text };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Dev(a) => {
                let resolved = a.resolve()?;
                notices.extend(resolved.notices.iter().cloned());
                serve(resolved, ingot_engine::Mode::Dev, &notices).await
            }
            Command::Start(a) => {
                let resolved = a.resolve()?;
                notices.extend(resolved.notices.iter().cloned());
                serve(resolved, ingot_engine::Mode::Start, &notices).await
            }
            Command::Send(a) => client::send(a, output).await,
            Command::Runs(a) => client::runs(a, output).await,
            Command::Run(a) => client::run(a, output).await,
            Command::Cancel(a) => client::cancel(a, output).await,
            Command::Replay(a) => client::replay(a, output).await,
        }
    })
}

/// Logs go to stderr: `RUST_LOG` when set, else `--log-level` (or
/// `--verbose`: debug) for Ingot's own crates, info for the rest (warn and
/// error apply to all). `--json` writes them as JSON lines.
fn init_logs(global: &GlobalArgs) {
    let level = global.log_level.as_deref().unwrap_or(if global.verbose { "debug" } else { "info" });
    let others = if matches!(level, "warn" | "error") { level } else { "info" };
    let default = format!(
        "{others},sqlx=warn,ingot={level},ingot_cli={level},ingot_engine={level},ingot_store={level},ingot_core={level},ingot_dashboard={level}"
    );
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if global.json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// How long a stopping engine waits for open HTTP connections (a dashboard's
/// live stream, a slow client) before it exits anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve(resolved: Resolved, mode: ingot_engine::Mode, notices: &[String]) -> anyhow::Result<()> {
    // Before anything else: a SIGTERM from now on stops the engine cleanly
    // instead of killing it.
    let mut stop = StopSignal::install()?;
    for notice in notices {
        tracing::warn!("{notice}");
    }
    let store: Arc<dyn Store> = match &resolved.store {
        StoreChoice::Sqlite(db) => match SqliteStore::open(db).await {
            Ok(store) => Arc::new(store),
            // The message names the database and who holds it; there is nothing to add.
            Err(e @ StoreError::Locked { .. }) => bail!("{e}"),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", db.display()))),
        },
        StoreChoice::Postgres { uri, max_conns, lease } => {
            let opts = PgOptions { max_conns: *max_conns, lease: *lease, node_id: None };
            PgStore::connect(uri, opts).await.with_context(|| format!("opening {}", resolved.store.describe()))?
        }
    };
    let engine = Engine::new(resolved.engine, store, Clock::system()).await?;
    let addr: SocketAddr = format!("{}:{}", resolved.host, resolved.port)
        .parse()
        .with_context(|| format!("bad address {}:{}", resolved.host, resolved.port))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    engine.start();
    tracing::info!("Ingot {} listening on http://{addr} (database {})", mode_name(mode), resolved.store.describe());
    let (drain_tx, mut drain_rx) = tokio::sync::watch::channel(false);
    let router = match resolved.ui {
        Ui::Served => engine.router(),
        Ui::Off => engine.router().layer(axum::middleware::from_fn(without_ui)),
    };
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = drain_rx.changed().await;
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => {
            engine.shutdown();
            return served.context("serving HTTP");
        }
        signal = stop.recv() => tracing::info!("{signal}: shutting down"),
    }
    // Stop taking work, then let the requests in flight finish. Calls to SDKs
    // in flight are abandoned: their queue items are claimed again on restart.
    engine.shutdown();
    let _ = drain_tx.send(true);
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await {
        Ok(served) => served.context("serving HTTP")?,
        Err(_) => tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; exiting anyway"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// `--no-ui`: the dashboard's pages and assets, its sign-in and the GraphQL
/// API answer 404; the event, SDK and REST APIs are unchanged.
async fn without_ui(req: Request, next: Next) -> Response {
    if is_ui_path(req.uri().path()) {
        return (axum::http::StatusCode::NOT_FOUND, "the dashboard is off (--no-ui)").into_response();
    }
    next.run(req).await
}

fn is_ui_path(path: &str) -> bool {
    let page = ingot_dashboard::PAGE_ROUTES.iter().any(|route| match route.strip_suffix("/{*rest}") {
        Some(prefix) => path.starts_with(&format!("{prefix}/")),
        None => path == *route,
    });
    page || path.starts_with("/assets/") || matches!(path, "/favicon.ico" | "/v0/gql" | "/login" | "/logout")
}

/// Ctrl-C (SIGINT) and, on Unix, SIGTERM (what `kill`, systemd and container
/// runtimes send): either one drains and exits 0.
struct StopSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl StopSignal {
    /// Installs the handlers now, so a signal that comes early is not lost.
    fn install() -> anyhow::Result<StopSignal> {
        Ok(StopSignal {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Waits for the first stop signal; returns its name.
    #[cfg(unix)]
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = self.term.recv() => "SIGTERM",
        }
    }

    /// Waits for the first stop signal; returns its name.
    #[cfg(not(unix))]
    async fn recv(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted"
    }
}

fn mode_name(mode: ingot_engine::Mode) -> &'static str {
    match mode {
        ingot_engine::Mode::Dev => "dev server",
        ingot_engine::Mode::Start => "engine",
    }
}
