//! `GET /v1/stream`: server-sent events telling live views (the dashboard)
//! that an event arrived or a run changed.
//!
//! Runs change inside the worker, which knows nothing about HTTP, so one
//! shared poller reads the newest events and runs every [`POLL_EVERY`] while
//! at least one client is connected, and broadcasts what changed. A request
//! that writes (an event, a cancel, a rerun) pokes the poller so its effect
//! shows up at once instead of at the next tick.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use ingot_core::{EventId, RunId, RunStatus};
use ingot_store::{EventFilter, RunFilter, RunRecord};
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};

use crate::Engine;

/// How often the poller reads the store while clients are connected.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// The newest runs and events compared on each tick (running runs are always compared).
const WINDOW: usize = 100;
/// Messages a slow client may fall behind before it is told to reload.
const CHANNEL_CAPACITY: usize = 1024;

/// The broadcast side of the live stream.
pub struct Hub {
    tx: broadcast::Sender<Arc<str>>,
    poke: Notify,
    polling: AtomicBool,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub { tx: broadcast::channel(CHANNEL_CAPACITY).0, poke: Notify::new(), polling: AtomicBool::new(false) }
    }
}

impl Hub {
    /// Sends a message to every connected client.
    pub fn publish(&self, message: Value) {
        let _ = self.tx.send(message.to_string().into());
    }

    /// Asks the poller to look at the store now rather than at its next tick.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    fn clients(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// The JSON a client receives about a run.
pub fn run_message(r: &RunRecord) -> Value {
    json!({
        "type": "run",
        "run_id": r.id().to_string(),
        "function": r.state.function.as_str(),
        "status": r.status().as_str(),
        "rev": r.rev,
        "event_id": r.event_ids.first().map(|e| e.to_string()),
        "started_at_ms": r.started_at_ms,
        "ended_at_ms": r.ended_at_ms,
    })
}

/// `GET /v1/stream`.
pub async fn stream(State(engine): State<Arc<Engine>>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = engine.live.tx.subscribe();
    ensure_poller(&engine);
    let hello = futures::stream::once(async { Ok(SseEvent::default().data(json!({"type": "hello"}).to_string())) });
    let updates = futures::stream::unfold(rx, |mut rx| async move {
        let data: Arc<str> = match rx.recv().await {
            Ok(msg) => msg,
            Err(broadcast::error::RecvError::Lagged(_)) => json!({"type": "resync"}).to_string().into(),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(SseEvent::default().data(&*data)), rx))
    });
    Sse::new(futures::StreamExt::chain(hello, updates)).keep_alive(KeepAlive::default())
}

fn ensure_poller(engine: &Arc<Engine>) {
    if engine.live.polling.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        tokio::spawn(poll(engine.clone()));
    }
}

/// What the poller saw last.
#[derive(Default)]
struct Seen {
    newest_event: Option<EventId>,
    runs: HashMap<RunId, (i64, RunStatus)>,
}

async fn poll(engine: Arc<Engine>) {
    let mut seen = Seen::default();
    if let Err(e) = tick(&engine, &mut seen, false).await {
        tracing::debug!(error = %e, "live poller: first read failed");
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = engine.live.poke.notified() => {}
        }
        if engine.live.clients() == 0 {
            engine.live.polling.store(false, Ordering::Release);
            // A client that subscribed between the check and the store would
            // find `polling` still set and start no poller: look again.
            if engine.live.clients() == 0 || engine.live.polling.swap(true, Ordering::AcqRel) {
                return;
            }
        }
        if let Err(e) = tick(&engine, &mut seen, true).await {
            tracing::debug!(error = %e, "live poller: read failed");
        }
    }
}

async fn tick(engine: &Engine, seen: &mut Seen, announce: bool) -> Result<(), crate::EngineError> {
    let events = engine.queries.events(&EventFilter { limit: WINDOW, ..Default::default() }).await?;
    let fresh: Vec<_> = events.iter().filter(|e| seen.newest_event.is_none_or(|n| e.internal_id > n)).collect();
    if let Some(newest) = events.first() {
        seen.newest_event = Some(seen.newest_event.map_or(newest.internal_id, |n| n.max(newest.internal_id)));
    }
    if announce {
        for e in fresh.iter().rev() {
            engine.live.publish(json!({
                "type": "event",
                "id": e.internal_id.to_string(),
                "name": e.name,
                "received_at_ms": e.received_at_ms,
            }));
        }
    }

    let mut runs = engine.queries.runs(&RunFilter { limit: WINDOW, ..Default::default() }).await?;
    runs.extend(engine.queries.runs(&RunFilter { status: Some(RunStatus::Running), limit: 5 * WINDOW, ..Default::default() }).await?);
    // Runs we saw running that are in neither list ended out of sight: read them.
    let listed: std::collections::HashSet<RunId> = runs.iter().map(|r| r.id()).collect();
    let missing: Vec<RunId> =
        seen.runs.iter().filter(|(id, (_, status))| *status == RunStatus::Running && !listed.contains(id)).map(|(id, _)| *id).collect();
    for id in missing {
        if let Some(r) = engine.queries.find_run(id).await? {
            runs.push(r);
        }
    }
    let mut next = HashMap::with_capacity(runs.len());
    for r in runs {
        if next.contains_key(&r.id()) {
            continue;
        }
        let changed = seen.runs.get(&r.id()).is_none_or(|(rev, _)| *rev != r.rev);
        if announce && changed {
            engine.live.publish(run_message(&r));
        }
        next.insert(r.id(), (r.rev, r.status()));
    }
    seen.runs = next;
    Ok(())
}
