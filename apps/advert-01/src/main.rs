//! The `advert-01` binary: `advert-01` (or `advert-01 serve`) starts the app
//! and, unless `--engine-url`/`INNGEST_BASE_URL` names another engine, the
//! embedded Ingot engine with its dashboard; `advert-01 send NAME --data
//! JSON` sends one of the app's events.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ingot_core::backoff::RetryPolicy;

use advert_01::config;
use advert_01::jobs::client::{self, EngineTarget};
use advert_01::server::{self, EngineChoice, StartOptions, DEFAULT_APP_ADDR, DEFAULT_ENGINE_ADDR};

#[derive(Parser, Debug)]
#[command(name = "advert-01", version, about = "advert-01's background jobs, with the Ingot engine embedded")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the app (the default).
    Serve(ServeArgs),
    /// Send one of the app's events through the client.
    Send(SendArgs),
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Where the app listens.
    #[arg(long, env = "ADVERT_ADDR", default_value = DEFAULT_APP_ADDR)]
    addr: SocketAddr,
    /// Use this engine instead of embedding one (e.g. http://127.0.0.1:8288
    /// for a separate `ingot dev`; set INNGEST_DEV=1 for a dev engine).
    #[arg(long, env = "INNGEST_BASE_URL")]
    engine_url: Option<String>,
    /// Where the embedded engine and its dashboard listen.
    #[arg(long, env = "ADVERT_ENGINE_ADDR", default_value = DEFAULT_ENGINE_ADDR)]
    engine_addr: SocketAddr,
    /// The embedded engine's SQLite file (default: <data dir>/engine.db).
    #[arg(long, env = "ADVERT_ENGINE_DB")]
    engine_db: Option<PathBuf>,
    /// A fixed delay between retries, in seconds, instead of Inngest's
    /// backoff table (embedded engine only).
    #[arg(long)]
    retry_interval: Option<f64>,
}

#[derive(Args, Debug)]
struct SendArgs {
    /// The event name: test/hello.world, email/send, strategy/generate,
    /// export/pdf or webhook/deliver.
    name: String,
    /// The event's data, as JSON.
    #[arg(long, default_value = "{}")]
    data: String,
    /// The engine to send to (default: INNGEST_BASE_URL, else the local one).
    #[arg(long, env = "INNGEST_BASE_URL")]
    engine_url: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Some(Command::Send(a)) => send(a).await,
            Some(Command::Serve(a)) => serve(a).await,
            None => serve(cli.serve).await,
        }
    })
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let explicit_cloud =
        std::env::var("INNGEST_DEV").is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off"));
    let engine = match (&a.engine_url, explicit_cloud) {
        (None, false) => EngineChoice::Embedded {
            addr: a.engine_addr,
            db: a.engine_db.clone(),
            retry: match a.retry_interval {
                Some(s) if s.is_finite() && s > 0.0 => RetryPolicy::Fixed(Duration::from_secs_f64(s)),
                Some(s) => anyhow::bail!("--retry-interval must be a positive number of seconds, got {s}"),
                None => RetryPolicy::Table,
            },
        },
        (url, _) => EngineChoice::External { url: url.clone() },
    };
    let running =
        server::start(StartOptions { app_addr: a.addr, engine, lookup: server::process_env(), resolver: server::system_resolver() })
            .await?;
    if running.engine.is_some() {
        match running.wait_synced(server::SYNC_TIMEOUT).await {
            Ok(slugs) => tracing::info!(functions = slugs.len(), "advert-01 synced with the embedded engine"),
            Err(e) => tracing::warn!(error = %e, "not synced yet; the engine keeps trying"),
        }
    }
    eprintln!();
    eprintln!("  advert-01   {}  (functions at {}/api/inngest)", running.app_url, running.app_url);
    eprintln!("  dashboard   {}", running.engine_url);
    eprintln!("  try         cargo run --release -p advert-01 -- send test/hello.world --data '{{\"name\":\"Ada\"}}'");
    eprintln!();
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn send(a: SendArgs) -> anyhow::Result<()> {
    let data: serde_json::Value = serde_json::from_str(&a.data).with_context(|| format!("--data is not JSON: {}", a.data))?;
    // With nothing configured, send to the local engine in dev mode, as
    // `ingot send` does.
    let nothing_set = std::env::var("INNGEST_DEV").is_err() && std::env::var("INNGEST_EVENT_KEY").is_err();
    let target = EngineTarget { base_url: a.engine_url.clone(), force_dev: nothing_set };
    let client = client::client(&target)?;
    // The same refusals as the app's API; the app checks again on delivery.
    let webhooks = config::webhook_policy(std::env::var("WEBHOOK_ALLOW_PRIVATE").ok().as_deref())?;
    let id = client::send_named(&client, &a.name, data, webhooks).await?;
    println!("{}", serde_json::json!({"ids": [id.as_str()], "name": a.name}));
    eprintln!("sent {} ({id}); watch it at {}/runs", a.name, client.api_origin());
    Ok(())
}
