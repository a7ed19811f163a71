//! Row mapping: ids, JSON columns and the records read back from rows.

use ingot_core::{EventId, RunId, RunStatus};
use rusqlite::Row;
use serde_json::Value;

use super::sql::{col, corrupt};
use crate::records::*;
use crate::Result;

pub(super) fn parse_run_id(s: String) -> Result<RunId> {
    RunId::parse(&s).ok_or_else(|| corrupt("run id", s))
}

pub(super) fn parse_json(s: &str, what: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn run_id(s: &str) -> Result<RunId> {
    RunId::parse(s).ok_or_else(|| corrupt("run id", s))
}

pub(super) fn event_id(s: &str) -> Result<EventId> {
    EventId::parse(s).ok_or_else(|| corrupt("event id", s))
}

pub(super) fn queue_row(row: &Row<'_>) -> Result<QueueItem> {
    Ok(QueueItem {
        id: QueueItemId(col(row, "id")?),
        run_id: run_id(&col::<String>(row, "run_id")?)?,
        work: work_from_json(&parse_json(&col::<String>(row, "work")?, "queue work")?)?,
        available_at_ms: col(row, "available_at_ms")?,
        dedupe: col(row, "dedupe")?,
    })
}

pub(super) fn run_row(row: &Row<'_>) -> Result<RunRecord> {
    let id = run_id(&col::<String>(row, "id")?)?;
    let status_s: String = col(row, "status")?;
    let status = RunStatus::parse(&status_s).ok_or_else(|| corrupt("run status", &status_s))?;
    let state = state_from_json(id, status, &parse_json(&col::<String>(row, "state")?, "run state")?)?;
    let ids: Vec<String> = serde_json::from_str(&col::<String>(row, "event_ids")?).map_err(|e| corrupt("run event ids", e))?;
    let output: Option<String> = col(row, "output")?;
    Ok(RunRecord {
        state,
        event_ids: ids.iter().map(|s| event_id(s)).collect::<Result<_>>()?,
        output: output.map(|o| parse_json(&o, "run output")).transpose()?,
        started_at_ms: col(row, "started_at_ms")?,
        ended_at_ms: col(row, "ended_at_ms")?,
        correlation_id: col(row, "correlation_id")?,
        rev: col(row, "rev")?,
    })
}

pub(super) fn event_row(row: &Row<'_>) -> Result<StoredEvent> {
    Ok(StoredEvent {
        internal_id: event_id(&col::<String>(row, "internal_id")?)?,
        name: col(row, "name")?,
        payload: parse_json(&col::<String>(row, "payload")?, "event payload")?,
        received_at_ms: col(row, "received_at_ms")?,
    })
}

pub(super) fn pause_row(row: &Row<'_>) -> Result<Pause> {
    let kind: String = col(row, "kind")?;
    Ok(Pause {
        id: col(row, "id")?,
        run_id: run_id(&col::<String>(row, "run_id")?)?,
        step: col(row, "step")?,
        kind: PauseKind::parse(&kind).ok_or_else(|| corrupt("pause kind", &kind))?,
        event_name: col(row, "event_name")?,
        if_exp: col(row, "if_exp")?,
        correlation_id: col(row, "correlation_id")?,
        trigger: parse_json(&col::<String>(row, "trigger")?, "pause trigger")?,
        expires_at_ms: col(row, "expires_at_ms")?,
    })
}

pub(super) const RUN_COLS: &str = "id, function, status, state, event_ids, output, started_at_ms, ended_at_ms, correlation_id, rev";
