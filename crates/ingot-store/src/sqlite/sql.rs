//! Statement helpers shared by the writer and the readers: connection
//! settings, cached statements, columns read by name, and the mapping of
//! SQLite errors to [`StoreError`].

use std::time::Duration;

use rusqlite::{Connection, Row, ToSql};

use crate::{Result, StoreError};

/// Prepared statements cached per connection.
pub(super) const STATEMENT_CACHE: usize = 128;
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Runs one cached statement, returning the number of rows it changed.
pub(super) fn exec(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> Result<usize> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(unavailable)
}

/// Runs one cached query expected to return at most one row.
pub(super) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let mut rows = stmt.query(params).map_err(unavailable)?;
    match rows.next().map_err(unavailable)? {
        Some(row) => f(row).map(Some),
        None => Ok(None),
    }
}

/// Runs one cached query, mapping every row.
pub(super) fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    mut f: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let mut rows = stmt.query(params).map_err(unavailable)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(unavailable)? {
        out.push(f(row)?);
    }
    Ok(out)
}

/// Reads a column by name.
pub(super) fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, name: &str) -> Result<T> {
    row.get(name).map_err(|e| corrupt(name, e))
}
