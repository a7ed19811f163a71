//! Tests of the SQLite store's own invariants: the migration list, retention
//! coverage and query plans, and opening an sqlx-migrated database.

use super::migrate::MIGRATIONS;

/// Every file in `migrations/sqlite` is listed, in order, numbered by its prefix.
#[test]
fn migrations_list_matches_the_directory() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut files: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.ends_with(".sql")).collect();
    files.sort();
    let listed: Vec<String> = MIGRATIONS.iter().map(|(_, name, _)| name.to_string()).collect();
    assert_eq!(files, listed);
    for (i, (number, name, _)) in MIGRATIONS.iter().enumerate() {
        assert_eq!(*number, i as i64 + 1);
        assert_eq!(name[..4].parse::<i64>().unwrap(), *number);
    }
}

/// Every table is either purged by retention or bounded by configuration:
/// a new table must be added here, and to `purge` if it grows per run or event.
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
    // debounce row lives only until its run starts (`TakeDebounce`).
    const BOUNDED: &[&str] = &["apps", "functions", "paused_functions", "debounces"];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingot.db");
    drop(super::SqliteStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").unwrap();
    let mut tables: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
    tables.sort();
    let mut known: Vec<String> = PURGED.iter().chain(BOUNDED).map(|t| t.to_string()).collect();
    known.sort();
    assert_eq!(tables, known);
    for sql in super::purge::RUN_LEFTOVERS {
        assert!(PURGED.iter().any(|t| sql.contains(&format!(" {t} "))), "{sql}");
    }
}

/// Each retention query walks an index, never a whole table that grows with the load.
#[tokio::test]
async fn retention_queries_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingot.db");
    drop(super::SqliteStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows: Vec<String> = stmt.query_map([1i64, 2i64], |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect();
        rows.join("; ")
    };
    let queries = [
        "SELECT id FROM runs WHERE ended_at_ms < ?1 AND status != 'Running' ORDER BY ended_at_ms LIMIT ?2",
        "SELECT e.internal_id FROM events e WHERE e.received_at_ms < ?1
         AND NOT EXISTS (SELECT 1 FROM run_events re WHERE re.event_id = e.internal_id)
         AND NOT EXISTS (SELECT 1 FROM debounces d WHERE d.event_id = e.internal_id) ORDER BY e.received_at_ms LIMIT ?2",
        "SELECT rowid FROM unique_keys WHERE expires_at_ms <= ?1 LIMIT ?2",
        "SELECT rowid FROM limiters WHERE tat_ms <= ?1 LIMIT ?2",
        "SELECT rowid FROM sessions WHERE expires_at_ms <= ?1 LIMIT ?2",
        "SELECT id FROM skips WHERE at_ms < ?1 LIMIT ?2",
        "SELECT 1 FROM run_events WHERE run_id = ?1 LIMIT ?2",
        "SELECT 1 FROM singletons WHERE run_id = ?1 LIMIT ?2",
    ];
    for sql in queries {
        let p = plan(sql);
        assert!(p.starts_with("SEARCH") && !p.contains("SCAN"), "{sql}\n  → {p}");
    }
}

/// A database migrated by the earlier sqlx-based store opens without re-running its migrations.
#[tokio::test]
async fn opens_a_database_migrated_by_sqlx() {
    use crate::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingot.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // The sqlx-based store only ever had the first two migrations.
        for (_, _, sql) in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);
             INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (1, 'init', 1, x'00', 1), (2, 'flow control', 1, x'00', 1);
             INSERT INTO apps (id, url, synced_at_ms) VALUES ('app', 'http://localhost/api/inngest', 1);",
        )
        .unwrap();
    }
    let store = super::SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.apps().await.unwrap().len(), 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
}
