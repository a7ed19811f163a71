//! The schema the migrations leave: the same tables as SQLite's, each either
//! purged by retention or bounded by configuration.

mod common;

use ingot_store_postgres::{PgOptions, PgStore};

/// A new table must be added here, and to `purge` if it grows per run or event.
#[tokio::test]
async fn every_table_is_purged_or_bounded() {
    const PURGED: &[&str] = &[
        "runs",
        "steps",
        "history",
        "run_events",
        "queue",
        "pauses",
        "singletons",
        "batches",
        "events",
        "unique_keys",
        "limiters",
        "sessions",
        "skips",
    ];
    // Apps, functions and paused functions are as many as were synced; a
    // debounce row lives only until its run starts; one row per migration; a
    // concurrency slot lives while its item's call does (its ack or release
    // deletes it; a dead node's is deleted when its key is next counted).
    const BOUNDED: &[&str] = &["apps", "functions", "paused_functions", "debounces", "ingot_migrations", "concurrency_slots"];
    common::with_fresh_db(|uri| async move {
        drop(PgStore::connect(&uri, PgOptions::default()).await.unwrap());
        let raw = common::raw(&uri).await;
        let mut tables: Vec<String> = raw
            .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        tables.sort();
        let mut known: Vec<String> = PURGED.iter().chain(BOUNDED).map(|t| t.to_string()).collect();
        known.sort();
        assert_eq!(tables, known);
    })
    .await;
}
