//! Row mapping: ids, JSON text columns and the records read back from rows.
//! Anything that does not parse is [`StoreError::Corrupt`](ingot_store::StoreError::Corrupt).

use ingot_core::{EventId, RunId, RunStatus};
use ingot_store::{state_from_json, work_from_json, Pause, PauseKind, QueueItem, QueueItemId, Result, RunRecord, StoredEvent};
use serde_json::Value;
use tokio_postgres::Row;

use crate::sql::{col, corrupt};

pub(crate) fn run_id(s: &str) -> Result<RunId> {
    RunId::parse(s).ok_or_else(|| corrupt("run id", s))
}

pub(crate) fn event_id(s: &str) -> Result<EventId> {
    EventId::parse(s).ok_or_else(|| corrupt("event id", s))
}

pub(crate) fn json(row: &Row, name: &str) -> Result<Value> {
    let text: &str = col(row, name)?;
    serde_json::from_str(text).map_err(|e| corrupt(name, e))
}

pub(crate) fn event_ids(row: &Row, name: &str) -> Result<Vec<EventId>> {
    col::<Vec<&str>>(row, name)?.into_iter().map(event_id).collect()
}

pub(crate) fn queue_row(row: &Row) -> Result<QueueItem> {
    Ok(QueueItem {
        id: QueueItemId(col(row, "id")?),
        run_id: run_id(col(row, "run_id")?)?,
        work: work_from_json(&json(row, "work")?)?,
        available_at_ms: col(row, "available_at_ms")?,
        dedupe: col(row, "dedupe")?,
    })
}

pub(crate) fn run_row(row: &Row) -> Result<RunRecord> {
    let id = run_id(col(row, "id")?)?;
    let status_s: &str = col(row, "status")?;
    let status = RunStatus::parse(status_s).ok_or_else(|| corrupt("run status", status_s))?;
    let state = state_from_json(id, status, &json(row, "state")?)?;
    let output: Option<&str> = col(row, "output")?;
    Ok(RunRecord {
        state,
        event_ids: event_ids(row, "event_ids")?,
        output: output.map(|o| serde_json::from_str(o).map_err(|e| corrupt("run output", e))).transpose()?,
        started_at_ms: col(row, "started_at_ms")?,
        ended_at_ms: col(row, "ended_at_ms")?,
        correlation_id: col(row, "correlation_id")?,
        rev: col(row, "rev")?,
    })
}

pub(crate) fn event_row(row: &Row) -> Result<StoredEvent> {
    Ok(StoredEvent {
        internal_id: event_id(col(row, "internal_id")?)?,
        name: col(row, "name")?,
        payload: json(row, "payload")?,
        received_at_ms: col(row, "received_at_ms")?,
    })
}

pub(crate) fn pause_row(row: &Row) -> Result<Pause> {
    let kind: &str = col(row, "kind")?;
    Ok(Pause {
        id: col(row, "id")?,
        run_id: run_id(col(row, "run_id")?)?,
        step: col(row, "step")?,
        kind: PauseKind::parse(kind).ok_or_else(|| corrupt("pause kind", kind))?,
        event_name: col(row, "event_name")?,
        if_exp: col(row, "if_exp")?,
        correlation_id: col(row, "correlation_id")?,
        trigger: json(row, "trigger")?,
        expires_at_ms: col(row, "expires_at_ms")?,
    })
}
