//! The `ingot` binary: `ingot dev`, `ingot start`, `ingot send`.

mod args;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use ingot_engine::{Clock, Engine};
use ingot_store::{SqliteStore, StoreError};

use args::{Cli, Command, ServeArgs};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Dev(a) => serve(a, ingot_engine::Mode::Dev).await,
            Command::Start(a) => serve(a, ingot_engine::Mode::Start).await,
            Command::Send(a) => args::send(a).await,
        }
    })
}

/// How long a stopping engine waits for open HTTP connections (a dashboard's
/// live stream, a slow client) before it exits anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve(args: ServeArgs, mode: ingot_engine::Mode) -> anyhow::Result<()> {
    // Before anything else: a SIGTERM from now on stops the engine cleanly
    // instead of killing it.
    let mut stop = StopSignal::install()?;
    let resolved = args.resolve(mode)?;
    let store = match SqliteStore::open(&resolved.db).await {
        Ok(store) => store,
        // The message names the database and who holds it; there is nothing to add.
        Err(e @ StoreError::Locked { .. }) => bail!("{e}"),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", resolved.db.display()))),
    };
    let engine = Engine::new(resolved.engine, Arc::new(store), Clock::system()).await?;
    let addr: SocketAddr = format!("{}:{}", resolved.host, resolved.port)
        .parse()
        .with_context(|| format!("bad address {}:{}", resolved.host, resolved.port))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    engine.start();
    tracing::info!("Ingot {} listening on http://{addr} (database {})", mode_name(mode), resolved.db.display());
    let (drain_tx, mut drain_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, engine.router())
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
