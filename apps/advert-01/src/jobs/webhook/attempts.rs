//! The record of webhook deliveries: one row per attempt, whatever came of
//! it, in the app's database.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::{Db, DbError};

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx: delivered.
    Delivered,
    /// 5xx or 408: retried with backoff.
    Retry,
    /// 429 (or 503 with `Retry-After`): retried no sooner than asked.
    RetryAfter,
    /// No answer in time: retried.
    Timeout,
    /// The connection failed: retried.
    Unreachable,
    /// Another 4xx, a redirect, or a URL that cannot be used: not retried.
    Rejected,
}

impl Outcome {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry => "retry",
            Outcome::RetryAfter => "retry_after",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Delivered, Outcome::Retry, Outcome::RetryAfter, Outcome::Timeout, Outcome::Unreachable, Outcome::Rejected]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The `webhook-id`.
    pub message_id: String,
    /// The run that made it.
    pub run_id: String,
    /// The destination.
    pub url: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The HTTP status, if one came back.
    pub status_code: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The delay asked for by `Retry-After`, in milliseconds.
    pub retry_after_ms: Option<i64>,
    /// How long the attempt took.
    pub duration_ms: i64,
    /// When it started (RFC 3339).
    pub attempted_at: String,
}

/// Records one attempt.
pub async fn record(db: &Db, a: &Attempt) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO webhook_attempts (message_id, run_id, url, attempt, status_code, outcome, error, retry_after_ms, duration_ms, attempted_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&a.message_id)
    .bind(&a.run_id)
    .bind(&a.url)
    .bind(i64::from(a.attempt))
    .bind(a.status_code.map(i64::from))
    .bind(a.outcome.as_str())
    .bind(&a.error)
    .bind(a.retry_after_ms)
    .bind(a.duration_ms)
    .bind(&a.attempted_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

fn read(row: &sqlx::sqlite::SqliteRow) -> Result<Attempt, DbError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(Attempt {
        message_id: row.try_get("message_id")?,
        run_id: row.try_get("run_id")?,
        url: row.try_get("url")?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        status_code: row.try_get::<Option<i64>, _>("status_code")?.map(|c| c as u16),
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| DbError::Corrupt { table: "webhook_attempts", reason: format!("unknown outcome {outcome:?}") })?,
        error: row.try_get("error")?,
        retry_after_ms: row.try_get("retry_after_ms")?,
        duration_ms: row.try_get("duration_ms")?,
        attempted_at: row.try_get("attempted_at")?,
    })
}

/// Every attempt of one message, oldest first.
pub async fn for_message(db: &Db, message_id: &str) -> Result<Vec<Attempt>, DbError> {
    sqlx::query("SELECT * FROM webhook_attempts WHERE message_id = ? ORDER BY id")
        .bind(message_id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(read)
        .collect()
}

/// The last `limit` attempts to one destination, oldest first.
pub async fn for_url(db: &Db, url: &str, limit: u32) -> Result<Vec<Attempt>, DbError> {
    let mut rows: Vec<Attempt> = sqlx::query("SELECT * FROM webhook_attempts WHERE url = ? ORDER BY id DESC LIMIT ?")
        .bind(url)
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(read)
        .collect::<Result<_, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// The last `limit` attempts to any destination, oldest first.
pub async fn recent(db: &Db, limit: u32) -> Result<Vec<Attempt>, DbError> {
    let mut rows: Vec<Attempt> = sqlx::query("SELECT * FROM webhook_attempts ORDER BY id DESC LIMIT ?")
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(read)
        .collect::<Result<_, _>>()?;
    rows.reverse();
    Ok(rows)
}
