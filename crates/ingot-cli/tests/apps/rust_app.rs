//! The Rust SDK twin of `tests/sdk-apps/js/app.cjs` (same function ids,
//! triggers and behaviour; see `tests/sdk-apps/README.md`), served on `PORT`
//! until it is killed. Not shipped: the e2e harness (`ingot-test-support`,
//! `Sdk::Rust`) launches it as the Rust SDK app process of `tests/e2e_rust.rs`,
//! with `APP_ID`, `E2E_LOG` and the `INNGEST_*` settings in its environment.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ingot::{Client, Ctx, Error, Event, Function, FunctionRef, InvokeOpts, OnConflict, Signal, SignalOpts, WaitOpts};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Appends one JSON line to E2E_LOG before the SDK answers, so a test
/// that sees the run finish also sees every line it caused.
#[derive(Clone)]
pub struct Log(Arc<Option<PathBuf>>);

impl Log {
    fn record(&self, entry: Value) {
        if let Some(path) = self.0.as_ref() {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("opening E2E_LOG");
            // One write per line: appends of concurrent steps then never interleave.
            f.write_all(format!("{entry}\n").as_bytes()).expect("writing E2E_LOG");
        }
    }

    fn step(&self, func: &str, step: &str, ctx_run: &str, attempt: u32) {
        self.record(json!({"fn": func, "step": step, "run_id": ctx_run, "attempt": attempt}));
    }
}

#[derive(Serialize, Deserialize)]
pub struct Hello {
    pub name: String,
}
impl Event for Hello {
    const NAME: &'static str = "e2e/hello";
    type Data = Self;
}

#[derive(Serialize, Deserialize)]
pub struct Child {
    pub n: i64,
}
impl Event for Child {
    const NAME: &'static str = "e2e/child";
    type Data = Self;
}

#[derive(Serialize, Deserialize)]
pub struct WaitRequest {
    pub id: String,
    #[serde(default)]
    pub timeout: Option<String>,
}
impl Event for WaitRequest {
    const NAME: &'static str = "e2e/wait";
    type Data = Self;
}

#[derive(Serialize, Deserialize)]
pub struct Approve {
    pub id: String,
    pub by: String,
}
impl Event for Approve {
    const NAME: &'static str = "e2e/approve";
    type Data = Self;
}

#[derive(Serialize, Deserialize)]
pub struct Fanout {
    pub i: i64,
}
impl Event for Fanout {
    const NAME: &'static str = "e2e/fanout";
    type Data = Self;
}

fn functions(log: Log) -> Vec<Function> {
    let l = log.clone();
    let hello = Function::new("hello").name("Hello").trigger_event::<Hello>().handler(move |ctx: Ctx<Hello>| {
        let log = l.clone();
        async move {
            let message: String = ctx
                .step
                .run("greet", || async {
                    log.step("hello", "greet", ctx.run_id.as_str(), ctx.attempt);
                    Ok(format!("Hello {}", ctx.event.data.name))
                })
                .await?;
            Ok(json!({ "message": message }))
        }
    });

    let l = log.clone();
    let memo = Function::new("memo").name("Memo").trigger_event_name("e2e/memo").handler(move |ctx: Ctx| {
        let log = l.clone();
        async move {
            let mut out = Vec::new();
            for (step, value) in [("a", "A"), ("b", "B"), ("c", "C")] {
                let v: String = ctx
                    .step
                    .run(step, || async {
                        log.step("memo", step, ctx.run_id.as_str(), ctx.attempt);
                        Ok(value.to_string())
                    })
                    .await?;
                out.push(v);
            }
            Ok(out)
        }
    });

    let l = log.clone();
    let parallel = Function::new("parallel").name("Parallel").trigger_event_name("e2e/parallel").handler(move |ctx: Ctx| {
        let log = l.clone();
        async move {
            let step = |id: &'static str, v: i64| {
                let log = log.clone();
                let run_id = ctx.run_id.clone();
                let attempt = ctx.attempt;
                ctx.step.run(id, move || async move {
                    log.step("parallel", id, run_id.as_str(), attempt);
                    Ok(v)
                })
            };
            let (pa, pb) = futures::join!(step("pa", 1), step("pb", 2));
            let (pa, pb) = (pa?, pb?);
            let sum = step("after", pa + pb).await?;
            Ok(json!({ "sum": sum }))
        }
    });

    let l = log.clone();
    let flaky = Function::new("flaky").name("Flaky").trigger_event_name("e2e/flaky").retries(2).handler(move |ctx: Ctx| {
        let log = l.clone();
        async move {
            let out: String = ctx
                .step
                .run("flaky-step", || async {
                    log.step("flaky", "flaky-step", ctx.run_id.as_str(), ctx.attempt);
                    if ctx.attempt == 0 {
                        return Err(Error::msg("flaky: failing on attempt 0"));
                    }
                    Ok("ok".to_string())
                })
                .await?;
            Ok(out)
        }
    });

    let l = log.clone();
    let non_retriable =
        Function::new("non-retriable").name("Non-retriable").trigger_event_name("e2e/nonretriable").handler(move |ctx: Ctx| {
            let log = l.clone();
            async move {
                ctx.step
                    .run("doomed", || async {
                        log.step("non-retriable", "doomed", ctx.run_id.as_str(), ctx.attempt);
                        Err::<(), _>(Error::non_retriable("nope"))
                    })
                    .await?;
                Ok("unreachable")
            }
        });

    let l = log.clone();
    let fn_error =
        Function::new("fn-error").name("Function error").trigger_event_name("e2e/fnerror").retries(1).handler(move |ctx: Ctx| {
            let log = l.clone();
            async move {
                log.record(json!({"fn": "fn-error", "step": null, "run_id": ctx.run_id, "attempt": ctx.attempt}));
                Err::<(), _>(Error::msg("boom"))
            }
        });

    let sleeper = Function::new("sleeper").name("Sleeper").trigger_event_name("e2e/sleep").handler(|ctx: Ctx| async move {
        ctx.step.sleep("nap", Duration::from_secs(2)).await?;
        Ok("woke")
    });

    let waiter = Function::new("waiter").name("Waiter").trigger_event::<WaitRequest>().handler(|ctx: Ctx<WaitRequest>| async move {
        let timeout = ctx.event.data.timeout.as_deref().unwrap_or("30s");
        let timeout = ingot::parse_time_string(timeout).map_err(Error::non_retriable)?;
        let opts = WaitOpts::new(timeout).if_exp("async.data.id == event.data.id");
        let approval = ctx.step.wait_for_event::<Approve>("wait-approve", opts).await?;
        Ok(json!({ "matched": approval.is_some(), "approver": approval.map(|e| e.data.by) }))
    });

    let child = Function::new("child")
        .name("Child")
        .trigger_event::<Child>()
        .handler(|ctx: Ctx<Child>| async move { Ok(json!({ "doubled": ctx.event.data.n * 2 })) });

    let invoker = Function::new("invoker").name("Invoker").trigger_event_name("e2e/invoke").handler(|ctx: Ctx| async move {
        let n = ctx.event.data["n"].as_i64().unwrap_or_default();
        let child: FunctionRef<Child, Value> = FunctionRef::new("child");
        ctx.step.invoke("call-child", &child, Child { n }).await
    });

    let invoke_missing =
        Function::new("invoke-missing").name("Invoke missing").trigger_event_name("e2e/invoke-missing").handler(|ctx: Ctx| async move {
            let missing: FunctionRef = FunctionRef::new("does-not-exist");
            match ctx.step.invoke_with("call-missing", &missing, json!({}), InvokeOpts::new().timeout("10s")).await {
                Ok(res) => Ok(json!({ "unexpected": res })),
                Err(Error::Step(e)) => Ok(json!({ "error": e.message })),
                Err(e) => Err(e),
            }
        });

    let sender = Function::new("sender").name("Sender").trigger_event_name("e2e/send").handler(|ctx: Ctx| async move {
        ctx.step.send_event("fan", vec![Fanout { i: 1 }, Fanout { i: 2 }]).await?;
        Ok("sent")
    });

    let fanout = Function::new("fanout")
        .name("Fan-out")
        .trigger_event::<Fanout>()
        .handler(|ctx: Ctx<Fanout>| async move { Ok(json!({ "i": ctx.event.data.i })) });

    let (l1, l2) = (log.clone(), log);
    let with_failure = Function::new("with-failure")
        .name("With failure")
        .trigger_event_name("e2e/failing")
        .retries(0)
        .on_failure(move |ctx| {
            let log = l1.clone();
            async move {
                log.record(json!({
                    "fn": "with-failure-onfailure",
                    "step": null,
                    "error": ctx.event.data.error.message,
                    "run_id": ctx.event.data.run_id,
                    "attempt": ctx.attempt,
                }));
                Ok("handled")
            }
        })
        .handler(move |ctx: Ctx| {
            let log = l2.clone();
            async move {
                log.record(json!({"fn": "with-failure", "step": null, "run_id": ctx.run_id, "attempt": ctx.attempt}));
                Err::<(), _>(Error::msg("planned failure"))
            }
        });

    let cancellable =
        Function::new("cancellable").name("Cancellable").trigger_event_name("e2e/cancellable").handler(|ctx: Ctx| async move {
            ctx.step.sleep("long", Duration::from_secs(3600)).await?;
            Ok("never")
        });

    let signal_waiter =
        Function::new("signal-waiter").name("Signal waiter").trigger_event_name("e2e/signal-wait").handler(|ctx: Ctx| async move {
            let signal = ctx.event.data["signal"].as_str().unwrap_or_default().to_string();
            let timeout = ctx.event.data["timeout"].as_str().unwrap_or("30s").to_string();
            let opts = SignalOpts::new(timeout.as_str()).on_conflict(OnConflict::Replace);
            let got: Option<Signal> = ctx.step.wait_for_signal("wait-for-signal", &signal, opts).await?;
            Ok(json!({ "got": got }))
        });

    let signal_sender =
        Function::new("signal-sender").name("Signal sender").trigger_event_name("e2e/signal-send").handler(|ctx: Ctx| async move {
            let signal = ctx.event.data["signal"].as_str().unwrap_or_default().to_string();
            let run_id = ctx.step.send_signal("send-signal", &signal, ctx.event.data["data"].clone()).await?;
            Ok(json!({ "sent": { "runId": run_id } }))
        });

    ingot::functions![
        signal_waiter,
        signal_sender,
        hello,
        memo,
        parallel,
        flaky,
        non_retriable,
        fn_error,
        sleeper,
        waiter,
        child,
        invoker,
        invoke_missing,
        sender,
        fanout,
        with_failure,
        cancellable,
    ]
}

/// Serves the app on `PORT` (127.0.0.1) until the process is killed.
pub async fn serve() {
    let port: u16 = std::env::var("PORT").expect("PORT").parse().expect("PORT is a number");
    let app_id = std::env::var("APP_ID").expect("APP_ID");
    let log = Log(Arc::new(std::env::var_os("E2E_LOG").map(PathBuf::from)));
    let client = Client::new(&app_id).expect("INNGEST_* settings");
    let router = ingot::serve(&client, functions(log));
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
