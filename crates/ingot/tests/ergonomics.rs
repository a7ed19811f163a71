//! The SDK's conveniences, from the outside: typed invokes (ops and mocks),
//! handler state served through axum and in tests, time strings in steps
//! and options (and what a bad one does), errors from strings, and HTTPS
//! with the default client.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{dev_client, FakeEngine};
use ingot::testing::{CallOutcome, TestRun};
use ingot::{Ctx, Error, Function, InvokeOpts, Invoked, JsonEvent, Throttle, WaitOpts};
use ingot_protocol::Opcode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower::ServiceExt;

#[derive(Serialize, Deserialize)]
struct Amount {
    cents: u64,
}

fn event(name: &str) -> JsonEvent {
    JsonEvent::new(name, json!({}))
}

#[tokio::test]
async fn a_typed_invoke_sends_the_reference_and_its_options() {
    let tax =
        Function::new("tax").trigger_invoke::<Amount>().handler(|ctx: Ctx<Invoked<Amount>>| async move { Ok(ctx.event.data.cents / 5) });
    let tax_ref = tax.reference();
    let checkout = Function::new("checkout").trigger_event_name("shop/checkout").handler(move |ctx: Ctx| {
        let tax_ref = tax_ref.clone();
        async move {
            let due: u64 = ctx.step.invoke_with("tax", &tax_ref, Amount { cents: 500 }, InvokeOpts::new().timeout("1h30m")).await?;
            Ok(due + 500)
        }
    });
    let CallOutcome::Ops(ops) = TestRun::new(&checkout, event("shop/checkout")).call().await else { panic!("wanted an invoke op") };
    assert_eq!(ops[0].op, Opcode::InvokeFunction);
    assert_eq!(ops[0].opts, Some(json!({"function_id": "test-app-tax", "timeout": "1h30m", "payload": {"data": {"cents": 500}}})));
    let done = TestRun::new(&checkout, event("shop/checkout")).mock_invoke("tax", &tax.reference(), 100).call().await;
    assert_eq!(done, CallOutcome::Completed(json!(600)));
}

#[tokio::test]
async fn sleeps_and_waits_take_time_strings_and_a_bad_one_fails_the_run() {
    let f = Function::new("napper").trigger_event_name("t/nap").handler(|ctx: Ctx| async move {
        let spec = ctx.event.data["nap"].as_str().unwrap_or("2s").to_string();
        ctx.step.sleep("nap", spec).await?;
        ctx.step.wait_for_event_name("wait", "t/go", WaitOpts::new("2d")).await?;
        Ok("done")
    });
    let CallOutcome::Ops(ops) = TestRun::new(&f, JsonEvent::new("t/nap", json!({"nap": "1h30m"}))).call().await else {
        panic!("wanted a sleep")
    };
    assert_eq!((ops[0].op.clone(), ops[0].name.as_deref()), (Opcode::Sleep, Some("1h30m")));
    let t = TestRun::new(&f, JsonEvent::new("t/nap", json!({}))).mock_step("nap", Value::Null);
    let CallOutcome::Ops(ops) = t.call().await else { panic!("wanted a wait") };
    assert_eq!(ops[0].opts, Some(json!({"timeout": "48h"})));

    let bad = TestRun::new(&f, JsonEvent::new("t/nap", json!({"nap": "a while"}))).call().await;
    let CallOutcome::Failed { error, retriable: false } = bad else { panic!("a bad time string fails without retries: {bad:?}") };
    assert!(error.message.contains("step \"nap\"") && error.message.contains("\"a while\""), "{error:?}");
}

#[tokio::test]
async fn a_bad_option_is_reported_by_the_function_its_calls_and_the_sync() {
    let f: Function = Function::new("limited")
        .trigger_event_name("t/limited")
        .throttle(Throttle::new(1, "an hour"))
        .handler(|_ctx: Ctx| async move { Ok(()) })
        .into();
    assert_eq!(f.config_errors().len(), 1);
    assert!(f.config_errors()[0].contains("throttle") && f.config_errors()[0].contains("\"an hour\""), "{:?}", f.config_errors());
    let out = TestRun::new(&f, event("t/limited")).call().await;
    assert!(matches!(&out, CallOutcome::Failed { retriable: false, error } if error.message.contains("an hour")), "{out:?}");

    let engine = FakeEngine::start(|_| (200, json!({"ok": true}))).await;
    let router = ingot::serve(&dev_client("app", &engine.base), [f]);
    let put = Request::put("/api/inngest").header("host", "127.0.0.1:3000").body(Body::empty()).unwrap();
    let resp = router.oneshot(put).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert!(body["message"].as_str().unwrap().contains("an hour"), "{body}");
    assert!(engine.requests().is_empty(), "nothing is registered");
}

struct Greeting(&'static str);
struct Punctuation(char);

fn greeter() -> Function {
    Function::new("greet")
        .trigger_event_name("t/greet")
        .with_state(Punctuation('!'))
        .handler(|ctx: Ctx| async move {
            let greeting = ctx.state::<Greeting>()?;
            let punctuation = ctx.state::<Punctuation>()?;
            Ok(format!("{} {}{}", greeting.0, ctx.event.data["name"].as_str().unwrap_or("?"), punctuation.0))
        })
        .into()
}

#[tokio::test]
async fn state_reaches_handlers_when_served_and_in_tests() {
    let engine = FakeEngine::start(|_| (200, json!({"ok": true}))).await;
    let router = ingot::serve_with_state(&dev_client("app", &engine.base), [greeter()], Greeting("Hello"));
    let event = json!({"name": "t/greet", "data": {"name": "Ada"}});
    let body = json!({"event": event, "events": [event], "steps": {}, "ctx": {"run_id": "r1", "attempt": 0}});
    let req = Request::post("/api/inngest?fnId=app-greet&stepId=step").body(Body::from(body.to_string())).unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let out: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(out, json!("Hello Ada!"));

    let in_test = TestRun::new(&greeter(), JsonEvent::new("t/greet", json!({"name": "Bo"}))).with_state(Greeting("Hi")).run().await;
    assert_eq!(in_test.output, Ok(json!("Hi Bo!")));
    let missing = TestRun::new(&greeter(), JsonEvent::new("t/greet", json!({"name": "Bo"}))).call().await;
    let CallOutcome::Failed { error, retriable: false } = missing else { panic!("missing state fails for good: {missing:?}") };
    assert!(error.message.contains("no state of type") && error.message.contains("Greeting"), "{error:?}");
}

#[tokio::test]
async fn string_errors_fail_steps_like_any_error() {
    let f = Function::new("picky").trigger_event_name("t/picky").retries(1).handler(|ctx: Ctx| async move {
        let checked: Result<u32, String> = Err("not today".to_string());
        let n: u32 = ctx.step.run("check", || async { Ok(checked?) }).await?;
        if n == 0 {
            return Err("zero".into());
        }
        Ok::<_, Error>(n)
    });
    let run = TestRun::new(&f, event("t/picky")).run().await;
    assert_eq!(run.output.as_ref().unwrap_err().message, "not today");
    let check = run.step("check").unwrap();
    assert_eq!((check.attempts, check.errors.len(), check.recovered()), (2, 2, false));
}

/// With the default `rustls` feature, the client speaks TLS to an `https`
/// origin: the first bytes an HTTPS server receives are a TLS handshake
/// record (0x16), not an error about an unsupported scheme.
#[cfg(feature = "rustls")]
#[tokio::test]
async fn https_origins_get_a_tls_handshake() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 1];
        socket.read_exact(&mut first).await.unwrap();
        first[0]
    });
    let client = ingot::ClientBuilder::new("app").dev().base_url(format!("https://127.0.0.1:{port}")).build().unwrap();
    let send = tokio::spawn(async move { client.send(JsonEvent::new("t/x", json!({}))).await });
    assert_eq!(server.await.unwrap(), 0x16, "a TLS handshake record");
    send.abort();
}
