//! Timers that start runs: a debounce's period ending, a batch filling or
//! timing out, a cron tick. Each takes its guard in the commit that creates
//! the run, so a timer fires once.

use ingot_core::EventId;
use ingot_store::{Claimed, Guard, StoredEvent, WriteOp};
use ulid::Ulid;

use super::{Outcome, Worker};
use crate::error::{EngineError, Result};
use crate::starter::{run_ops, Start};

impl Worker {
    pub(super) async fn fire_debounce(&self, item: &Claimed, function: &str, key: &str) -> Result<Outcome> {
        let shared = &self.shared;
        let (Some(f), Some(d)) = (shared.registry.get(function), shared.store.debounce(function, key).await?) else {
            return self.ack(item).await;
        };
        let Some(event) = shared.store.event(d.event_id).await? else { return self.ack(item).await };
        let mut then = run_ops(&f, d.run_id, vec![d.event_id], &event.payload, None, shared.clock.now_ms());
        then.push(WriteOp::Ack(item.lease.clone()));
        let guard = Guard::TakeDebounce { function: function.to_string(), key: key.to_string(), event_id: d.event_id };
        let out = shared.commit(vec![WriteOp::Guarded { guard, then, otherwise: vec![] }]).await?;
        Ok(if out.guards_passed == [true] { Outcome::Done } else { Outcome::Release })
    }

    pub(super) async fn fire_batch(&self, item: &Claimed, function: &str) -> Result<Outcome> {
        let shared = &self.shared;
        let (Some(f), Some(b)) = (shared.registry.get(function), shared.store.batch(item.run_id).await?) else {
            return self.ack(item).await;
        };
        let events = shared.store.events_by_ids(&b.event_ids).await?;
        let Some(first) = events.first() else { return self.ack(item).await };
        let mut then = run_ops(&f, b.run_id, b.event_ids.clone(), &first.payload, None, shared.clock.now_ms());
        then.push(WriteOp::Ack(item.lease.clone()));
        let guard = Guard::TakeBatch { run_id: b.run_id, count: b.event_ids.len() };
        let out = shared.commit(vec![WriteOp::Guarded { guard, then, otherwise: vec![] }]).await?;
        Ok(if out.guards_passed == [true] { Outcome::Done } else { Outcome::Release })
    }

    pub(super) async fn fire_cron(&self, item: &Claimed, function: &str, cron: &str, scheduled_ms: i64) -> Result<Outcome> {
        let shared = &self.shared;
        let f = shared.registry.get(function);
        let Some(f) = f.filter(|f| f.config.triggers.iter().any(|t| t.cron.as_deref() == Some(cron))) else { return self.ack(item).await };
        let Ok(schedule) = crate::cron::Schedule::parse(cron) else { return self.ack(item).await };
        let now = shared.clock.now_ms();
        // Items queued before ticks carried their time: due time = scheduled time.
        let scheduled = if scheduled_ms > 0 { scheduled_ms } else { item.available_at_ms };
        let event = crate::cron::timer_event(cron, scheduled, now);
        let event =
            ingot_protocol::Event::from_user_json(event, true).map_err(|e| EngineError::InternalEvent(format!("timer event: {e}")))?;
        let internal = EventId(Ulid::new());
        let payload = event.to_json();
        let mut ops = vec![
            WriteOp::Ack(item.lease.clone()),
            WriteOp::InsertEvent(StoredEvent {
                internal_id: internal,
                name: event.name.clone(),
                payload: payload.clone(),
                received_at_ms: now,
            }),
        ];
        let start = Start { function: &f, event_id: internal, payload: &payload, user_id: event.id.as_deref(), correlation: None, now };
        self.starter.plan(start, &mut ops);
        if let Some(next) = schedule.next_after(now.max(scheduled)) {
            ops.push(crate::cron::tick_item(&f, cron, next));
        }
        shared.commit(ops).await?;
        Ok(Outcome::Done)
    }
}
