//! Phase `baseline` ([5]): the floor of this machine, that is the HTTP round
//! trip on loopback, the SQLite fsync commit rate, and the engine's store
//! alone without HTTP.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::future::join_all;
use ingot_core::RunId;
use ingot_store::{Commit, HistoryRecord, SqliteStore, Store, WriteOp};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use crate::client::Bench;
use crate::sdk::BASELINE_FN;
use crate::stats::{line, ms, Samples, Usage};
use crate::Counts;

pub async fn baseline_http(b: &Bench, c: &Counts) -> anyhow::Result<()> {
    let url = format!("{}?fnId={BASELINE_FN}&stepId=step", b.sdk_url);
    let body = r#"{"event":{"name":"x","data":{}},"events":[],"steps":{},"ctx":{"run_id":"01BASELINE"},"version":-1,"use_api":false}"#;
    let mut samples = Vec::with_capacity(c.http_baseline);
    for i in 0..c.http_baseline + 50 {
        let t0 = Instant::now();
        let resp = b.http.post(&url).body(body).send().await?;
        let _ = resp.bytes().await?;
        if i >= 50 {
            samples.push(t0.elapsed());
        }
    }
    let s = Samples::new(samples);
    line(
        &format!("HTTP round trip to the SDK endpoint (reqwest→axum, n={})", s.len()),
        &format!("p50 {}  p99 {}", ms(s.p50()), ms(s.p99())),
        "",
        None,
    );
    let url = format!("{}/health", b.engine_url);
    let mut samples = Vec::with_capacity(c.http_baseline);
    for i in 0..c.http_baseline + 50 {
        let t0 = Instant::now();
        let resp = b.http.get(&url).send().await?;
        let _ = resp.bytes().await?;
        if i >= 50 {
            samples.push(t0.elapsed());
        }
    }
    let s = Samples::new(samples);
    line(&format!("HTTP round trip to engine GET /health (n={})", s.len()), &format!("p50 {}  p99 {}", ms(s.p50()), ms(s.p99())), "", None);
    Ok(())
}

pub async fn baseline_fsync(dir: &std::path::Path, c: &Counts) -> anyhow::Result<()> {
    let path = dir.join("fsync-baseline.db");
    let mut conn = SqliteConnectOptions::from_str("sqlite://")?
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await?;
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)").execute(&mut conn).await?;
    let mut samples = Vec::with_capacity(c.fsync_commits);
    let t0 = Instant::now();
    for i in 0..c.fsync_commits {
        let t = Instant::now();
        sqlx::query("INSERT INTO t (v) VALUES (?)").bind(format!("row {i}")).execute(&mut conn).await?;
        samples.push(t.elapsed());
    }
    let wall = t0.elapsed();
    conn.close().await?;
    let s = Samples::new(samples);
    line(
        &format!("SQLite commit, 1 row each, WAL+FULL (n={})", c.fsync_commits),
        &format!("{:.0} commits/s  p50 {}  p99 {}", c.fsync_commits as f64 / wall.as_secs_f64(), ms(s.p50()), ms(s.p99())),
        "",
        None,
    );
    Ok(())
}

/// The engine's store alone, on a database of its own: how many commits and
/// point reads it serves, serially and with many callers, without HTTP.
pub async fn baseline_store(dir: &std::path::Path, c: &Counts, cores: usize) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open(&dir.join("store-baseline.db")).await?);
    let run_id = RunId::parse("01ARZ3NDEKTSV4RRFFQ69G5FAV").context("run id")?;
    let commit = move || Commit {
        ops: vec![WriteOp::History(HistoryRecord {
            run_id,
            at_ms: 0,
            kind: "bench".into(),
            step: Some("step".into()),
            name: None,
            attempt: Some(0),
            duration_ms: Some(0),
            detail: json!({"result": "ops"}),
        })],
    };
    // Serial: one commit in flight.
    let mut serial = Vec::with_capacity(c.fsync_commits);
    for _ in 0..c.fsync_commits {
        let t = Instant::now();
        store.commit(commit()).await?;
        serial.push(t.elapsed());
    }
    let serial = Samples::new(serial);
    line(
        &format!("SqliteStore commit, 1 in flight (n={})", serial.len()),
        &format!("p50 {}  p99 {}", ms(serial.p50()), ms(serial.p99())),
        "",
        None,
    );
    // Concurrent: 256 committers (the engine's worker count).
    let total = c.store_ops;
    let per = total / 256;
    let usage = Usage::now();
    let t0 = Instant::now();
    let tasks = (0..256).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..per {
                store.commit(commit()).await?;
            }
            anyhow::Ok(())
        })
    });
    for r in join_all(tasks).await {
        r??;
    }
    let wall = t0.elapsed();
    line(
        &format!("SqliteStore commits, 256 in flight (1 small op each, n={})", per * 256),
        &format!("{:.0} commits/s", (per * 256) as f64 / wall.as_secs_f64()),
        "",
        None,
    );
    line("", &usage.line(wall, cores), "", None);
    // Point reads through the store's read pool.
    let usage = Usage::now();
    let t0 = Instant::now();
    let tasks = (0..256).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..per {
                store.run(run_id).await?;
            }
            anyhow::Ok(())
        })
    });
    for r in join_all(tasks).await {
        r??;
    }
    let wall = t0.elapsed();
    line(
        &format!("SqliteStore point reads (run by id), 256 in flight (n={})", per * 256),
        &format!("{:.0} reads/s", (per * 256) as f64 / wall.as_secs_f64()),
        "",
        None,
    );
    line("", &usage.line(wall, cores), "", None);
    Ok(())
}
