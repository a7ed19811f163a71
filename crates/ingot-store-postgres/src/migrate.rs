//! The schema: the migrations in order, and applying those not yet applied
//! (recorded in `ingot_migrations`), one migrator at a time.

use ingot_store::{Result, StoreError};
use tokio_postgres::Client;

use crate::sql::pg_error;

/// The schema, in order, numbered as the SQLite store's migrations.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_init.sql", include_str!("../migrations/postgres/0001_init.sql")),
    (2, "0002_flow_control.sql", include_str!("../migrations/postgres/0002_flow_control.sql")),
    (3, "0003_paused_functions.sql", include_str!("../migrations/postgres/0003_paused_functions.sql")),
    (4, "0004_retention_sessions.sql", include_str!("../migrations/postgres/0004_retention_sessions.sql")),
    (5, "0005_signals.sql", include_str!("../migrations/postgres/0005_signals.sql")),
    (6, "0006_concurrency_slots.sql", include_str!("../migrations/postgres/0006_concurrency_slots.sql")),
    (7, "0007_run_search.sql", include_str!("../migrations/postgres/0007_run_search.sql")),
];

/// The advisory lock nodes take while they migrate ("ingotmig" as bytes).
/// Advisory locks are per database, so stores on other databases do not wait.
pub(crate) const MIGRATION_LOCK: i64 = 0x696e_676f_746d_6967;

/// Applies the migrations not yet applied, each in its own transaction,
/// holding [`MIGRATION_LOCK`] so that nodes starting together migrate once.
pub(crate) async fn migrate(client: &mut Client) -> Result<()> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg_error)?;
    let applied = apply(client).await;
    // Unlocked in any case; a dropped connection releases it too.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.map_err(pg_error);
    applied?;
    unlocked.map(|_| ())
}

async fn apply(client: &mut Client) -> Result<()> {
    let failed = |name: &str, e: tokio_postgres::Error| StoreError::Unavailable(format!("migration {name} failed: {}", pg_error(e)));
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS ingot_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
    let row = client.query_one("SELECT COALESCE(MAX(version), 0) AS v FROM ingot_migrations", &[]).await.map_err(pg_error)?;
    let version: i64 = row.try_get("v").map_err(|e| StoreError::Corrupt(format!("ingot_migrations: {e}")))?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if version > known {
        return Err(StoreError::Unavailable(format!(
            "the database schema is at migration {version}, newer than this Ingot knows ({known}): run a newer Ingot"
        )));
    }
    for &(number, name, sql) in MIGRATIONS {
        if number <= version {
            continue;
        }
        let tx = client.transaction().await.map_err(|e| failed(name, e))?;
        tx.batch_execute(sql).await.map_err(|e| failed(name, e))?;
        tx.execute("INSERT INTO ingot_migrations (version, name) VALUES ($1, $2)", &[&number, &name]).await.map_err(|e| failed(name, e))?;
        tx.commit().await.map_err(|e| failed(name, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// Every file in `migrations/postgres` is listed, in order, numbered by
    /// its prefix, with the names the SQLite store's migrations have.
    #[test]
    fn migrations_list_matches_the_directories() {
        let names = |dir: &str| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            let mut files: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            files.sort();
            files
        };
        let listed: Vec<String> = MIGRATIONS.iter().map(|(_, name, _)| name.to_string()).collect();
        assert_eq!(names("migrations/postgres"), listed);
        assert_eq!(names("../ingot-store/migrations/sqlite"), listed, "the same numbers and names as SQLite's");
        for (i, (number, name, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*number, i as i64 + 1);
            assert_eq!(name[..4].parse::<i64>().unwrap(), *number);
        }
    }
}
