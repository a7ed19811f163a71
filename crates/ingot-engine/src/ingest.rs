//! Ingest: turns events into writes (store the event, start the runs it
//! triggers, resume the pauses it matches) and commits them. Used by the
//! event API and for the events the engine emits itself, so both paths
//! behave the same.

use std::sync::Arc;

use base64::Engine as _;
use ingot_core::expr;
use ingot_core::lifecycle::{FUNCTION_FINISHED, FUNCTION_INVOKED};
use ingot_core::EventId;
use ingot_protocol::Event;
use ingot_store::{Guard, PauseKind, QueueItem, StoredEvent, Work, WriteOp};

use serde_json::Value;
use ulid::Ulid;

use crate::error::Result;
use crate::shared::Shared;
use crate::starter::{Start, Starter};

/// Accepts events.
pub struct Ingest {
    shared: Arc<Shared>,
    starter: Arc<Starter>,
}

pub use ingot_core::start::IDEMPOTENCY_MS;

/// The writes for a set of events, and their internal ids in order.
pub struct Planned {
    pub ids: Vec<EventId>,
    pub ops: Vec<WriteOp>,
}

/// Derives internal ids from `X-Inngest-Event-Id-Seed: <ms>,<base64 10 bytes>`:
/// the time is `ms`, the entropy the bytes with the 1-based index added to bytes 6..10.
pub fn seeded_ids(seed: &str, count: usize) -> Option<Vec<EventId>> {
    let (ms, entropy) = seed.split_once(',')?;
    let ms: u64 = ms.trim().parse().ok()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(entropy.trim()).ok()?;
    if bytes.len() != 10 || ms >= 1 << 48 {
        return None;
    }
    Some(
        (0..count)
            .map(|i| {
                let mut b = [0u8; 10];
                b.copy_from_slice(&bytes);
                let tail = u32::from_be_bytes([b[6], b[7], b[8], b[9]]).wrapping_add(i as u32 + 1);
                b[6..10].copy_from_slice(&tail.to_be_bytes());
                let mut random: u128 = 0;
                for x in b {
                    random = (random << 8) | x as u128;
                }
                EventId(Ulid::from_parts(ms, random))
            })
            .collect(),
    )
}

impl Ingest {
    pub fn new(shared: Arc<Shared>, starter: Arc<Starter>) -> Ingest {
        Ingest { shared, starter }
    }

    /// Stores validated events and everything they trigger in one commit;
    /// returns their internal ids. `ids` as for [`Ingest::plan`].
    pub async fn accept(&self, events: Vec<Event>, ids: Option<Vec<EventId>>) -> Result<Vec<EventId>> {
        let planned = self.plan(events, ids).await?;
        self.shared.commit(planned.ops).await?;
        Ok(planned.ids)
    }

    /// Plans the writes for validated events. `ids` are internal ids to use
    /// (from a seed); fresh ULIDs otherwise.
    pub async fn plan(&self, events: Vec<Event>, ids: Option<Vec<EventId>>) -> Result<Planned> {
        let now = self.shared.clock.now_ms();
        let mut planned = Planned { ids: Vec::new(), ops: Vec::new() };
        let mut pauses = std::collections::HashMap::new();
        for (i, mut event) in events.into_iter().enumerate() {
            let internal = ids.as_ref().and_then(|v| v.get(i).copied()).unwrap_or_else(|| EventId(Ulid::new()));
            let user_id = event.id.clone();
            if event.id.is_none() {
                event.id = Some(internal.to_string());
            }
            if event.ts.is_none() {
                event.ts = Some(now);
            }
            let payload = event.to_json();
            let mut ops = vec![WriteOp::InsertEvent(StoredEvent {
                internal_id: internal,
                name: event.name.clone(),
                payload: payload.clone(),
                received_at_ms: now,
            })];
            planned.ids.push(internal);
            self.plan_runs(&event, &payload, internal, user_id.as_deref(), now, &mut ops);
            self.plan_resumes(&event, &payload, &mut ops, &mut pauses).await?;
            if ids.as_ref().is_some_and(|v| v.get(i).is_some()) {
                // A seeded id is the same when the SDK retries the send: the
                // retry must not start the runs or resume the pauses again.
                let guard = Guard::UniqueKey {
                    scope: ingot_core::keys::SEEDED_EVENT_SCOPE.into(),
                    key: internal.to_string(),
                    now_ms: now,
                    expires_at_ms: now + IDEMPOTENCY_MS,
                };
                planned.ops.push(WriteOp::Guarded { guard, then: ops, otherwise: vec![] });
            } else {
                planned.ops.extend(ops);
            }
        }
        Ok(planned)
    }

    /// `POST /v1/signals`: resumes the run waiting for `signal` with
    /// `{signal, data}`; its id, or `None` when no run waits for it (or the
    /// wait expired, or another signal took it first).
    pub async fn signal(&self, signal: &str, data: Value) -> Result<Option<ingot_core::RunId>> {
        let now = self.shared.clock.now_ms();
        let Some(pause) = self.shared.store.pause_by_correlation(&ingot_core::keys::signal(signal)).await? else { return Ok(None) };
        if pause.kind != PauseKind::Signal || pause.expires_at_ms < now {
            return Ok(None);
        }
        let value = serde_json::json!({ "signal": signal, "data": data });
        let work = resume_work(&pause.id, &pause.step, PauseKind::Signal, Ok(value));
        let out = self.shared.commit(vec![consume_and_queue(&pause.id, QueueItem::new(pause.run_id, work, now))]).await?;
        Ok((out.guards_passed == [true]).then_some(pause.run_id))
    }

    fn plan_runs(&self, event: &Event, payload: &Value, internal: EventId, user_id: Option<&str>, now: i64, ops: &mut Vec<WriteOp>) {
        let inngest = payload.pointer("/data/_inngest");
        let targets = if event.name == FUNCTION_INVOKED {
            let fn_id = inngest.and_then(|m| m.get("fn_id")).and_then(Value::as_str).unwrap_or("");
            self.shared.registry.get(fn_id).into_iter().collect()
        } else {
            self.shared.registry.matching(&event.name, payload)
        };
        let correlation = inngest.and_then(|m| m.get("correlation_id")).and_then(Value::as_str).map(str::to_string);
        for f in targets {
            let start = Start { function: &f, event_id: internal, payload, user_id, correlation: correlation.clone(), now };
            self.starter.plan(start, ops);
        }
    }

    /// `pauses` caches the pauses read per event name within one request.
    async fn plan_resumes(
        &self,
        event: &Event,
        payload: &Value,
        ops: &mut Vec<WriteOp>,
        pauses: &mut std::collections::HashMap<String, Vec<ingot_store::Pause>>,
    ) -> Result<()> {
        let now = self.shared.clock.now_ms();
        if !pauses.contains_key(&event.name) {
            let found = self.shared.store.pauses_for_event(&event.name).await?;
            pauses.insert(event.name.clone(), found);
        }
        for pause in pauses[&event.name].clone() {
            if pause.kind == PauseKind::Invoke || pause.expires_at_ms < now {
                continue;
            }
            let matched = match &pause.if_exp {
                Some(src) => expr::eval_bool(src, &[("event", &pause.trigger), ("async", payload)]),
                None => true,
            };
            if !matched {
                continue;
            }
            // cancelOn: the matching event cancels the run; a wait resumes it. Once either way.
            let work = match pause.kind {
                PauseKind::Cancel => Work::Cancel,
                _ => resume_work(&pause.id, &pause.step, PauseKind::WaitForEvent, Ok(payload.clone())),
            };
            ops.push(consume_and_queue(&pause.id, QueueItem::new(pause.run_id, work, now)));
        }
        if event.name == FUNCTION_FINISHED {
            if let Some(corr) = payload.pointer("/data/correlation_id").and_then(Value::as_str) {
                if let Some(pause) = self.shared.store.pause_by_correlation(corr).await? {
                    let data = &payload["data"];
                    let result = match data.get("error") {
                        Some(err) if !err.is_null() => Err(err.clone()),
                        _ => Ok(data.get("result").cloned().unwrap_or(Value::Null)),
                    };
                    let work = resume_work(&pause.id, &pause.step, PauseKind::Invoke, result);
                    ops.push(consume_and_queue(&pause.id, QueueItem::new(pause.run_id, work, now)));
                }
            }
        }
        Ok(())
    }
}

/// The resume of a run whose pause was resolved with `value`.
fn resume_work(pause: &str, step: &str, kind: PauseKind, value: Result<Value, Value>) -> Work {
    Work::Resume { step: step.to_string(), pause: pause.to_string(), kind, value }
}

/// Consumes a pause and queues `item`, once: a pause resolves a single time.
fn consume_and_queue(pause: &str, item: QueueItem) -> WriteOp {
    WriteOp::Guarded { guard: Guard::ConsumePause(pause.to_string()), then: vec![WriteOp::Enqueue(item)], otherwise: vec![] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_are_deterministic_and_distinct() {
        let seed = "1700000000000,AAECAwQFBgcICQ==";
        let a = seeded_ids(seed, 3).unwrap();
        let b = seeded_ids(seed, 3).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].timestamp_ms(), 1_700_000_000_000);
        assert_ne!(a[0], a[1]);
        assert!(seeded_ids("nope", 1).is_none());
        assert!(seeded_ids("1,AAEC", 1).is_none());
    }
}
