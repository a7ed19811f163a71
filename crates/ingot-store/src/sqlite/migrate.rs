//! The schema: the migrations in order, and applying those not yet applied
//! (`PRAGMA user_version`, or the record an sqlx-migrated database kept).

use rusqlite::{Connection, OptionalExtension};

use super::sql::unavailable;
use crate::{Result, StoreError};

/// The schema, in order: `PRAGMA user_version` is the number of the last one applied.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_init.sql", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "0002_flow_control.sql", include_str!("../../migrations/sqlite/0002_flow_control.sql")),
    (3, "0003_paused_functions.sql", include_str!("../../migrations/sqlite/0003_paused_functions.sql")),
    (4, "0004_retention_sessions.sql", include_str!("../../migrations/sqlite/0004_retention_sessions.sql")),
    (5, "0005_signals.sql", include_str!("../../migrations/sqlite/0005_signals.sql")),
    (6, "0006_concurrency_slots.sql", include_str!("../../migrations/sqlite/0006_concurrency_slots.sql")),
    (7, "0007_run_search.sql", include_str!("../../migrations/sqlite/0007_run_search.sql")),
];

/// Applies the migrations not yet applied, each in its own transaction.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let failed = |name: &str, e: rusqlite::Error| StoreError::Unavailable(format!("migration {name} failed: {e}"));
    let mut version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(unavailable)?;
    if version == 0 {
        // A database migrated by the earlier sqlx-based store records its migrations there.
        let sqlx: Option<i64> = conn
            .query_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'", [], |_| Ok(()))
            .optional()
            .map_err(unavailable)?
            .map(|()| conn.query_row("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1", [], |r| r.get(0)))
            .transpose()
            .map_err(unavailable)?
            .flatten();
        version = sqlx.unwrap_or(0);
    }
    for &(number, name, sql) in MIGRATIONS {
        if number <= version {
            continue;
        }
        conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {number};\nCOMMIT;")).map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            failed(name, e)
        })?;
    }
    // Keep `user_version` in step even when the sqlx record was the source.
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(unavailable)?;
    if current < version {
        conn.pragma_update(None, "user_version", version).map_err(unavailable)?;
    }
    Ok(())
}
