//! Phase `nodes` ([8], run only when asked): the same load of 3-step runs on
//! SQLite (one node), PostgreSQL (one node) and PostgreSQL (two nodes in this
//! process on one database, events sent to both), printed side by side; then
//! how long a dead node's leased work waits before a live node picks it up.
//!
//! Every configuration gets its own engine(s), SDK endpoint and fresh
//! database (SQLite file in the bench's directory; a PostgreSQL database made
//! on `INGOT_BENCH_POSTGRES`, default postgres://postgres@127.0.0.1:5432/test,
//! and dropped afterwards). Both nodes of the two-node case share this
//! process and its cores, as two engines on one 2-core machine would.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ingot_engine::Engine;
use ingot_store::{SqliteStore, Store};
use ingot_store_postgres::{PgOptions, PgStore};
use serde_json::{json, Value};

use crate::client::{register, send_events, serve_engine, serve_sdk, Bench};
use crate::phases::throughput::UNLIMITED;
use crate::sdk::Sdk;
use crate::stats::{line, Usage};

/// Lease of the PostgreSQL nodes here (short, so the pickup is timed in seconds).
const LEASE: Duration = Duration::from_secs(2);

/// A database made for the phase, dropped with it.
struct PgDb {
    admin: String,
    name: String,
}

impl PgDb {
    async fn create() -> anyhow::Result<PgDb> {
        let admin = std::env::var("INGOT_BENCH_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("ingot_bench_{}", ulid::Ulid::new().to_string().to_lowercase());
        exec(&admin, &format!("CREATE DATABASE {name}")).await.with_context(|| format!("creating database {name} on {admin}"))?;
        Ok(PgDb { admin, name })
    }

    fn uri(&self) -> String {
        match self.admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{}", self.name),
            None => format!("{} dbname={}", self.admin, self.name),
        }
    }

    async fn drop_now(self) {
        if let Err(e) = exec(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await {
            eprintln!("  could not drop {}: {e:#}", self.name);
        }
    }
}

async fn exec(uri: &str, sql: &str) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(conn);
    client.batch_execute(sql).await?;
    drop(client);
    let _ = conn.await;
    Ok(())
}

/// One engine serving on loopback; `start` runs its loops.
async fn engine(store: Arc<dyn Store>, workers: Option<usize>, start: bool) -> anyhow::Result<(Arc<Engine>, String)> {
    serve_engine(
        store,
        |c| {
            if let Some(w) = workers {
                c.workers = w;
            }
        },
        start,
    )
    .await
}

fn bench_for(url: &str, sdk: &Arc<Sdk>, sdk_url: &str, http: &reqwest::Client, cores: usize) -> Bench {
    Bench { engine_url: url.to_string(), sdk_url: sdk_url.to_string(), http: http.clone(), sdk: sdk.clone(), cores }
}

async fn pg_store(uri: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store = PgStore::connect(uri, PgOptions { max_conns: 16, lease: LEASE, node_id: None }).await?;
    Ok(store)
}

/// What one configuration did.
struct Measured {
    runs_per_s: f64,
    steps_per_s: f64,
    cpu: String,
}

/// Sends `runs` events of the 3-step function, spread over `nodes` in
/// batches of `batch`, and waits until the API of the first node shows none
/// Running.
async fn drive(nodes: &[Bench], runs: usize, batch: usize) -> anyhow::Result<Measured> {
    let (function, event) = UNLIMITED;
    let sdk = &nodes[0].sdk;
    let before = sdk.done(function);
    let bodies: Vec<String> = (0..runs)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|c| Value::Array(c.iter().map(|i| json!({"name": event, "data": {"i": i}})).collect()).to_string())
        .collect();
    let usage = Usage::now();
    let t0 = Instant::now();
    for (n, body) in bodies.into_iter().enumerate() {
        send_events(&nodes[n % nodes.len()], body).await?;
    }
    let deadline = Duration::from_secs(240);
    while (sdk.done(function) - before) < runs as u64 {
        if t0.elapsed() > deadline {
            bail!("only {} of {runs} runs finished within {deadline:?}", sdk.done(function) - before);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let url = format!("{}/v1/runs?status=Running&function={function}&limit=1", nodes[0].engine_url);
    loop {
        let v: Value = nodes[0].http.get(&url).send().await?.json().await?;
        if v["data"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        if t0.elapsed() > deadline {
            bail!("runs still Running after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(Measured { runs_per_s: runs as f64 / secs, steps_per_s: (runs * 3) as f64 / secs, cpu: usage.line(t0.elapsed(), nodes[0].cores) })
}

pub async fn run(dir: &Path, runs: usize, batch: usize, workers: Option<usize>, cores: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).timeout(Duration::from_secs(60)).build()?;
    let mut results: Vec<(&str, Measured)> = Vec::new();

    // SQLite, one node.
    {
        let db = dir.join("nodes-sqlite.db");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await?);
        let (engine, url) = engine(store, workers, true).await?;
        let (sdk, sdk_url) = serve_sdk().await?;
        let b = bench_for(&url, &sdk, &sdk_url, &http, cores);
        register(&b).await?;
        results.push(("SQLite, 1 node", drive(&[b], runs, batch).await?));
        engine.shutdown();
    }
    // PostgreSQL, one node.
    {
        let db = PgDb::create().await?;
        let (engine, url) = engine(pg_store(&db.uri()).await?, workers, true).await?;
        let (sdk, sdk_url) = serve_sdk().await?;
        let b = bench_for(&url, &sdk, &sdk_url, &http, cores);
        register(&b).await?;
        let measured = drive(&[b], runs, batch).await;
        engine.shutdown();
        drop(engine);
        db.drop_now().await;
        results.push(("PostgreSQL, 1 node", measured?));
    }
    // PostgreSQL, two nodes on one database.
    {
        let db = PgDb::create().await?;
        let (a, url_a) = engine(pg_store(&db.uri()).await?, workers, true).await?;
        let (b, url_b) = engine(pg_store(&db.uri()).await?, workers, true).await?;
        let (sdk, sdk_url) = serve_sdk().await?;
        let nodes = [bench_for(&url_a, &sdk, &sdk_url, &http, cores), bench_for(&url_b, &sdk, &sdk_url, &http, cores)];
        register(&nodes[0]).await?;
        // The other node reads the sync within its 2 s follow interval.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let measured = drive(&nodes, runs, batch).await;
        a.shutdown();
        b.shutdown();
        drop((a, b));
        db.drop_now().await;
        results.push(("PostgreSQL, 2 nodes (one process, events to both)", measured?));
    }
    let sqlite = results[0].1.runs_per_s;
    for (name, m) in &results {
        line(
            &format!("{name}: {runs} 3-step runs"),
            &format!("{:.0} runs/s, {:.0} steps/s ({:.2}× SQLite)", m.runs_per_s, m.steps_per_s, m.runs_per_s / sqlite),
            "",
            None,
        );
        line("", &m.cpu, "", None);
    }

    // A dead node's work: a node claims the first calls of `dead` runs and
    // dies (its store is dropped: no renewal, no release); a live node,
    // started right after, picks them up once the lease (2 s) has run out.
    let dead = (runs / 10).clamp(10, 500);
    let db = PgDb::create().await?;
    let (live, url) = engine(pg_store(&db.uri()).await?, workers, false).await?;
    let (sdk, sdk_url) = serve_sdk().await?;
    let b = bench_for(&url, &sdk, &sdk_url, &http, cores);
    register(&b).await?;
    let events: Vec<Value> = (0..dead).map(|i| json!({"name": UNLIMITED.1, "data": {"i": i}})).collect();
    send_events(&b, Value::Array(events).to_string()).await?;
    let dying = PgStore::connect(&db.uri(), PgOptions { max_conns: 2, lease: LEASE, node_id: Some("bench-dying-node".into()) }).await?;
    let now = ingot_engine::Clock::system().now_ms();
    let held = dying.claim(now + 1_000, dead * 2).await?.items.len();
    drop(dying);
    let died = Instant::now();
    live.start();
    let before = sdk.done(UNLIMITED.0);
    let first_call = loop {
        if sdk.calls.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break died.elapsed();
        }
        if died.elapsed() > Duration::from_secs(60) {
            bail!("the live node never picked up the dead node's work");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    while sdk.done(UNLIMITED.0) - before < dead as u64 {
        if died.elapsed() > Duration::from_secs(120) {
            bail!("the dead node's runs never finished");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let finished = died.elapsed();
    live.shutdown();
    drop(live);
    db.drop_now().await;
    line(
        &format!("a dead node held {held} first calls (lease {} s): first picked up / all {dead} runs done", LEASE.as_secs()),
        &format!("{:.2} s / {:.2} s after it died", first_call.as_secs_f64(), finished.as_secs_f64()),
        "≈ the lease",
        None,
    );
    Ok(())
}
