//! Strategies in the app's database: saved in one transaction (a retried
//! save replaces the same rows, so it never duplicates), and loaded back.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::plan::{Allocation, Brief, Kpi, Phase};
use crate::db::{Db, DbError};
use crate::jobs::client::{Audience, Channel, Goal};

/// A strategy as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStrategy {
    /// Its id (a ULID).
    pub id: String,
    /// The validated brief.
    pub brief: Brief,
    /// The budget split, largest first.
    pub allocations: Vec<Allocation>,
    /// The schedule.
    pub phases: Vec<Phase>,
    /// The targets.
    pub kpis: Vec<Kpi>,
    /// One paragraph.
    pub summary: String,
    /// The event that asked for it.
    pub event_id: Option<String>,
    /// The run that made it.
    pub run_id: String,
    /// When it was stored (RFC 3339).
    pub created_at: String,
}

fn corrupt(reason: impl std::fmt::Display) -> DbError {
    DbError::Corrupt { table: "strategies", reason: reason.to_string() }
}

fn date(s: &str) -> Result<NaiveDate, DbError> {
    s.parse().map_err(|e| corrupt(format!("bad date {s:?}: {e}")))
}

fn goal(s: &str) -> Result<Goal, DbError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| corrupt(format!("bad goal {s:?}: {e}")))
}

fn channel(s: &str) -> Result<Channel, DbError> {
    Channel::parse(s).ok_or_else(|| corrupt(format!("bad channel {s:?}")))
}

/// Saves a strategy, replacing any earlier save of the same id.
pub async fn save(db: &Db, s: &StoredStrategy) -> Result<(), DbError> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM strategies WHERE id = ?").bind(&s.id).execute(&mut *tx).await?;
    let audience = serde_json::to_string(&s.brief.audience).map_err(corrupt)?;
    sqlx::query(
        "INSERT INTO strategies (id, campaign, goal, currency, total_budget_cents, start_date, end_date, audience_json, summary, event_id, run_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&s.id)
    .bind(&s.brief.campaign)
    .bind(s.brief.goal.as_str())
    .bind(&s.brief.currency)
    .bind(s.brief.budget_cents)
    .bind(s.brief.start_date.to_string())
    .bind(s.brief.end_date.to_string())
    .bind(audience)
    .bind(&s.summary)
    .bind(&s.event_id)
    .bind(&s.run_id)
    .bind(&s.created_at)
    .execute(&mut *tx)
    .await?;
    for (i, a) in s.allocations.iter().enumerate() {
        sqlx::query(
            "INSERT INTO strategy_allocations (strategy_id, position, channel, share_bps, amount_cents, rationale) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(i as i64)
        .bind(a.channel.as_str())
        .bind(a.share_bps)
        .bind(a.amount_cents)
        .bind(&a.rationale)
        .execute(&mut *tx)
        .await?;
    }
    for (i, p) in s.phases.iter().enumerate() {
        sqlx::query(
            "INSERT INTO strategy_phases (strategy_id, position, name, start_date, end_date, budget_cents, focus) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(i as i64)
        .bind(&p.name)
        .bind(p.start_date.to_string())
        .bind(p.end_date.to_string())
        .bind(p.budget_cents)
        .bind(&p.focus)
        .execute(&mut *tx)
        .await?;
    }
    for (i, k) in s.kpis.iter().enumerate() {
        sqlx::query(
            "INSERT INTO strategy_kpis (strategy_id, position, channel, metric, target, unit, rationale) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(i as i64)
        .bind(k.channel.map(Channel::as_str))
        .bind(&k.metric)
        .bind(k.target)
        .bind(&k.unit)
        .bind(&k.rationale)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Loads a strategy; `None` when there is none with this id.
pub async fn load(db: &Db, id: &str) -> Result<Option<StoredStrategy>, DbError> {
    let Some(row) = sqlx::query("SELECT * FROM strategies WHERE id = ?").bind(id).fetch_optional(db.pool()).await? else {
        return Ok(None);
    };
    let audience: Audience = serde_json::from_str(&row.try_get::<String, _>("audience_json")?).map_err(corrupt)?;
    let allocations = sqlx::query("SELECT * FROM strategy_allocations WHERE strategy_id = ? ORDER BY position")
        .bind(id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(Allocation {
                channel: channel(&r.try_get::<String, _>("channel")?)?,
                share_bps: r.try_get("share_bps")?,
                amount_cents: r.try_get("amount_cents")?,
                rationale: r.try_get("rationale")?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let phases = sqlx::query("SELECT * FROM strategy_phases WHERE strategy_id = ? ORDER BY position")
        .bind(id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(Phase {
                name: r.try_get("name")?,
                start_date: date(&r.try_get::<String, _>("start_date")?)?,
                end_date: date(&r.try_get::<String, _>("end_date")?)?,
                budget_cents: r.try_get("budget_cents")?,
                focus: r.try_get("focus")?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let kpis = sqlx::query("SELECT * FROM strategy_kpis WHERE strategy_id = ? ORDER BY position")
        .bind(id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(Kpi {
                channel: r.try_get::<Option<String>, _>("channel")?.as_deref().map(channel).transpose()?,
                metric: r.try_get("metric")?,
                target: r.try_get("target")?,
                unit: r.try_get("unit")?,
                rationale: r.try_get("rationale")?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    // The channels in the brief's order are not stored apart: the
    // allocations hold every one of them.
    let channels = allocations.iter().map(|a| a.channel).collect();
    Ok(Some(StoredStrategy {
        id: row.try_get("id")?,
        brief: Brief {
            campaign: row.try_get("campaign")?,
            goal: goal(&row.try_get::<String, _>("goal")?)?,
            budget_cents: row.try_get("total_budget_cents")?,
            currency: row.try_get("currency")?,
            channels,
            audience,
            start_date: date(&row.try_get::<String, _>("start_date")?)?,
            end_date: date(&row.try_get::<String, _>("end_date")?)?,
        },
        allocations,
        phases,
        kpis,
        summary: row.try_get("summary")?,
        event_id: row.try_get("event_id")?,
        run_id: row.try_get("run_id")?,
        created_at: row.try_get("created_at")?,
    }))
}

/// How many strategies are stored.
pub async fn count(db: &Db) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM strategies").fetch_one(db.pool()).await?)
}
