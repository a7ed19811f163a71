//! The `ingot` binary: `ingot dev`, `ingot start`, `ingot send`.

mod args;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ingot_engine::{Clock, Engine};
use ingot_store::SqliteStore;

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

async fn serve(args: ServeArgs, mode: ingot_engine::Mode) -> anyhow::Result<()> {
    let resolved = args.resolve(mode)?;
    let store = SqliteStore::open(&resolved.db).await.with_context(|| format!("opening {}", resolved.db.display()))?;
    let engine = Engine::new(resolved.engine, Arc::new(store), Clock::system()).await?;
    let addr: SocketAddr = format!("{}:{}", resolved.host, resolved.port)
        .parse()
        .with_context(|| format!("bad address {}:{}", resolved.host, resolved.port))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    engine.start();
    tracing::info!("Ingot {} listening on http://{addr} (database {})", mode_name(mode), resolved.db.display());
    let app = engine.router();
    let shutdown_engine = engine.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
            shutdown_engine.shutdown();
        })
        .await?;
    Ok(())
}

fn mode_name(mode: ingot_engine::Mode) -> &'static str {
    match mode {
        ingot_engine::Mode::Dev => "dev server",
        ingot_engine::Mode::Start => "engine",
    }
}
