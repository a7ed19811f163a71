//! The Rust SDK twin of `tests/sdk-apps/js/flow-app.cjs`, built with the
//! `ingot` crate's `Function` builder: same function ids, triggers, flow
//! control, E2E_LOG lines and outputs (see `tests/sdk-apps/README.md`),
//! served on `PORT` until it is killed. Not shipped: the e2e harness
//! (`ingot-test-support`, `Sdk::Rust.flow_app()`) launches it as the Rust SDK
//! app process of `tests/e2e_flow.rs`.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ingot::{
    BatchEvents, CancelOn, Client, Concurrency, Ctx, Debounce, Error, Function, RateLimit, Singleton, SingletonMode, Throttle, Timeouts,
};
use serde_json::{json, Value};

/// Appends one JSON line (`{..entry, t}`) to E2E_LOG before the SDK
/// answers, so a test that sees the run finish also sees its lines.
#[derive(Clone)]
pub struct Log(Arc<Option<PathBuf>>);

impl Log {
    fn record(&self, mut entry: Value) {
        let Some(path) = self.0.as_ref() else { return };
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        entry["t"] = json!(t);
        // One write per line: steps of different runs log at the same
        // time, and O_APPEND keeps a single write whole.
        let line = format!("{entry}\n");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("opening E2E_LOG");
        f.write_all(line.as_bytes()).expect("writing E2E_LOG");
    }
}

/// A step whose body logs `start` (with `extra`), pauses, and logs `end`.
async fn timed_step(ctx: &Ctx, log: &Log, func: &str, step: &str, extra: Value, pause: Duration) -> Result<(), Error> {
    let run_id = ctx.run_id.as_str().to_string();
    let line = move |phase: &str| {
        let mut e = json!({"fn": func, "step": step, "run_id": run_id, "phase": phase});
        for (k, v) in extra.as_object().into_iter().flatten() {
            e[k] = v.clone();
        }
        e
    };
    ctx.step
        .run(step, || async move {
            log.record(line("start"));
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            log.record(line("end"));
            Ok(Value::Null)
        })
        .await?;
    Ok(())
}

/// Logs step `begin`, then sleeps `nap` for `duration`.
async fn sleeper(ctx: Ctx, log: Log, func: &'static str, duration: Duration) -> Result<Value, Error> {
    let d = &ctx.event.data;
    timed_step(&ctx, &log, func, "begin", json!({"user": d["user"], "n": d["n"]}), Duration::ZERO).await?;
    ctx.step.sleep("nap", duration).await?;
    Ok(json!("finished"))
}

/// A handler from an `async fn(Ctx, Log)`.
fn with_log<F, Fut>(log: &Log, f: F) -> impl Fn(Ctx) -> Fut + Send + Sync + 'static
where
    F: Fn(Ctx, Log) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, Error>> + Send + 'static,
{
    let log = log.clone();
    move |ctx| f(ctx, log.clone())
}

fn functions(log: &Log) -> Vec<Function> {
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    ingot::functions![
        // At most one executing step per user.
        Function::new("conc")
            .name("Concurrency")
            .trigger_event_name("flow/conc")
            .concurrency(Concurrency::new(1).key("event.data.user"))
            .handler(with_log(log, move |ctx, log| async move {
                let user = ctx.event.data["user"].clone();
                timed_step(&ctx, &log, "conc", "work", json!({"user": user, "n": ctx.event.data["n"]}), ms(300)).await?;
                Ok(json!({ "user": user }))
            })),
        Function::new("throttle").name("Throttle").trigger_event_name("flow/throttle").throttle(Throttle::new(1, s(1))).handler(with_log(
            log,
            move |ctx, log| async move {
                let n = ctx.event.data["n"].clone();
                timed_step(&ctx, &log, "throttle", "go", json!({ "n": n }), Duration::ZERO).await?;
                Ok(json!({ "n": n }))
            },
        )),
        Function::new("rate")
            .name("Rate limit")
            .trigger_event_name("flow/rate")
            .rate_limit(RateLimit::new(1, s(5)).key("event.data.user"))
            .handler(with_log(log, move |ctx, log| async move {
                let (user, n) = (ctx.event.data["user"].clone(), ctx.event.data["n"].clone());
                timed_step(&ctx, &log, "rate", "go", json!({"user": user, "n": n}), Duration::ZERO).await?;
                Ok(json!({"user": user, "n": n}))
            })),
        Function::new("debounce")
            .name("Debounce")
            .trigger_event_name("flow/debounce")
            .debounce(Debounce::new(s(1)).key("event.data.user").timeout(s(3)))
            .handler(with_log(log, move |ctx, log| async move {
                let (user, n) = (ctx.event.data["user"].clone(), ctx.event.data["n"].clone());
                timed_step(&ctx, &log, "debounce", "go", json!({"user": user, "n": n}), Duration::ZERO).await?;
                Ok(json!({"user": user, "n": n}))
            })),
        Function::new("batch").name("Batch").trigger_event_name("flow/batch").batch_events(BatchEvents::new(3, s(2))).handler(with_log(
            log,
            move |ctx, log| async move {
                let count = ctx.events.len();
                let ns: Vec<Value> = ctx.events.iter().map(|e| e.data["n"].clone()).collect();
                let ids: Vec<Option<String>> = ctx.events.iter().map(|e| e.id.clone()).collect();
                timed_step(&ctx, &log, "batch", "go", json!({"count": count, "ns": ns}), Duration::ZERO).await?;
                Ok(json!({"count": count, "ns": ns, "ids": ids}))
            },
        )),
        // One step at a time, so later events queue and priority orders them.
        Function::new("priority")
            .name("Priority")
            .trigger_event_name("flow/priority")
            .concurrency(Concurrency::new(1))
            .priority("event.data.priority")
            .handler(with_log(log, move |ctx, log| async move {
                let label = ctx.event.data["label"].clone();
                timed_step(&ctx, &log, "priority", "work", json!({ "label": label }), ms(300)).await?;
                Ok(json!({ "label": label }))
            })),
        Function::new("idem").name("Idempotency").trigger_event_name("flow/idem").idempotency("event.data.id").handler(with_log(
            log,
            move |ctx, log| async move {
                let (id, n) = (ctx.event.data["id"].clone(), ctx.event.data["n"].clone());
                timed_step(&ctx, &log, "idem", "go", json!({"id": id, "n": n}), Duration::ZERO).await?;
                Ok(json!({"id": id, "n": n}))
            },
        )),
        Function::new("singleton-skip")
            .name("Singleton skip")
            .trigger_event_name("flow/singleton-skip")
            .singleton(Singleton::new(SingletonMode::Skip).key("event.data.user"))
            .handler(with_log(log, move |ctx, log| sleeper(ctx, log, "singleton-skip", s(3)))),
        Function::new("singleton-cancel")
            .name("Singleton cancel")
            .trigger_event_name("flow/singleton-cancel")
            .singleton(Singleton::new(SingletonMode::Cancel).key("event.data.user"))
            .handler(with_log(log, move |ctx, log| sleeper(ctx, log, "singleton-cancel", s(3)))),
        // A second run waits behind the first (concurrency 1) longer than
        // its start timeout, so it is cancelled before it starts.
        Function::new("timeout-start")
            .name("Start timeout")
            .trigger_event_name("flow/timeout-start")
            .concurrency(Concurrency::new(1))
            .timeouts(Timeouts::new().start(s(1)))
            .handler(with_log(log, move |ctx, log| async move {
                let n = ctx.event.data["n"].clone();
                timed_step(&ctx, &log, "timeout-start", "work", json!({ "n": n }), ms(2500)).await?;
                Ok(json!({ "n": n }))
            })),
        Function::new("timeout-finish")
            .name("Finish timeout")
            .trigger_event_name("flow/timeout-finish")
            .timeouts(Timeouts::new().finish(s(2)))
            .handler(with_log(log, move |ctx, log| sleeper(ctx, log, "timeout-finish", s(10)))),
        Function::new("cancel-if")
            .name("Cancel on (if)")
            .trigger_event_name("flow/cancellable")
            .cancel_on(CancelOn::event_name("flow/cancel").if_exp("async.data.id == event.data.id"))
            .handler(with_log(log, move |ctx, log| sleeper(ctx, log, "cancel-if", s(30)))),
        // `match_field("data.id")` is the JS SDK's `match: "data.id"`.
        Function::new("cancel-match")
            .name("Cancel on (match)")
            .trigger_event_name("flow/cancellable-match")
            .cancel_on(CancelOn::event_name("flow/cancel-match").match_field("data.id"))
            .handler(with_log(log, move |ctx, log| sleeper(ctx, log, "cancel-match", s(30)))),
        Function::new("bulk").name("Bulk cancel target").trigger_event_name("flow/bulk").handler(with_log(log, move |ctx, log| sleeper(
            ctx,
            log,
            "bulk",
            s(30)
        ))),
        Function::new("cron").name("Cron").trigger_cron("* * * * *").handler(with_log(log, move |ctx, log| async move {
            let event = ctx.event.name.clone();
            let extra = json!({"event": event, "scheduledAt": ctx.event.data["scheduledAt"]});
            timed_step(&ctx, &log, "cron", "tick", extra, Duration::ZERO).await?;
            Ok(json!({ "event": event }))
        })),
    ]
}

/// Serves the app on `PORT` (127.0.0.1) until the process is killed.
pub async fn serve() {
    let port: u16 = std::env::var("PORT").expect("PORT").parse().expect("PORT is a number");
    let app_id = std::env::var("APP_ID").expect("APP_ID");
    let log = Log(Arc::new(std::env::var_os("E2E_LOG").map(PathBuf::from)));
    let client = Client::new(&app_id).expect("INNGEST_* settings");
    let router = ingot::serve(&client, functions(&log));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("binding PORT");
    println!("[{app_id}] ingot {} listening on http://127.0.0.1:{port}/api/inngest", env!("CARGO_PKG_VERSION"));
    axum::serve(listener, router).await.expect("serving");
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    tokio::runtime::Runtime::new().expect("tokio runtime").block_on(serve());
}
