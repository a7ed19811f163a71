//! The execution model through the public test helper: immediate execution
//! of a single new step, planning of parallel steps, targeted step calls,
//! attempts, memoized errors, waits and invokes, and the ways user code can
//! go wrong (nested steps, panics, payloads of the wrong type).

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use ingot::testing::{CallOutcome, TestRun};
use ingot::{Client, ClientBuilder, Ctx, Error, Event, Function, FunctionRef, JsonEvent, StepError, WaitOpts};
use ingot_protocol::{hash_step_id, Opcode};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
}

impl Event for Order {
    const NAME: &'static str = "shop/order.placed";
    type Data = Self;
}

#[derive(Debug, Serialize, Deserialize)]
struct Paid {
    order: u32,
}

impl Event for Paid {
    const NAME: &'static str = "shop/order.paid";
    type Data = Self;
}

fn client() -> Client {
    ClientBuilder::new("shop").dev().base_url("http://127.0.0.1:9").build().unwrap()
}

fn two_steps() -> Function {
    Function::new("two-steps")
        .trigger_event::<Order>()
        .handler(|ctx: Ctx<Order>| async move {
            let a: u32 = ctx.step.run("first", || async { Ok(ctx.event.data.id * 10) }).await?;
            let b: u32 = ctx.step.run("second", || async { Ok(a + 1) }).await?;
            Ok(json!({"a": a, "b": b}))
        })
        .into()
}

#[tokio::test]
async fn a_single_new_step_runs_at_once_and_memos_are_skipped() {
    let (c, f) = (client(), two_steps());
    let t = TestRun::new(&f, Order { id: 4 }).client(&c);
    assert_eq!(t.call().await, CallOutcome::StepRan { id: "first".into(), output: json!(40) });
    let t = t.mock_step("first", 40);
    assert_eq!(t.call().await, CallOutcome::StepRan { id: "second".into(), output: json!(41) });
    assert_eq!(t.mock_step("second", 41).call().await, CallOutcome::Completed(json!({"a": 40, "b": 41})));
}

#[tokio::test]
async fn planning_is_forced_when_the_engine_asks() {
    let (c, f) = (client(), two_steps());
    match TestRun::new(&f, Order { id: 1 }).client(&c).disable_immediate_execution().call().await {
        CallOutcome::Ops(ops) => {
            assert_eq!(ops.len(), 1);
            assert_eq!((ops[0].op.clone(), ops[0].id.clone()), (Opcode::StepPlanned, hash_step_id("first")));
        }
        other => panic!("{other:?}"),
    }
}

fn fan_out() -> Function {
    Function::new("fan-out")
        .trigger_event_name("shop/fan")
        .handler(|ctx: Ctx| async move {
            // FuturesUnordered only polls the futures that were woken: the step
            // chosen to run must be woken by the SDK.
            let mut all: FuturesUnordered<_> =
                ["a", "b", "c"].into_iter().map(|id| ctx.step.run(id, move || async move { Ok(id.to_uppercase()) })).collect();
            let mut got = Vec::new();
            while let Some(r) = all.next().await {
                got.push(r?);
            }
            got.sort();
            Ok(got)
        })
        .into()
}

#[tokio::test]
async fn parallel_steps_are_planned_then_run_one_per_call() {
    let (c, f) = (client(), fan_out());
    let t = TestRun::new(&f, JsonEvent::new("shop/fan", json!({}))).client(&c);
    let CallOutcome::Ops(ops) = t.call().await else { panic!("wanted planned ops") };
    let planned: Vec<(Opcode, String)> = ops.iter().map(|o| (o.op.clone(), o.display())).collect();
    assert_eq!(planned, [(Opcode::StepPlanned, "a".into()), (Opcode::StepPlanned, "b".into()), (Opcode::StepPlanned, "c".into())]);
    assert_eq!(t.call_step("b").await, CallOutcome::StepRan { id: "b".into(), output: json!("B") });
    assert!(matches!(t.call_step("nope").await, CallOutcome::Error { status: 500, .. }));
    let result = t.run().await;
    assert_eq!(result.output, Ok(json!(["A", "B", "C"])));
    assert_eq!(result.steps_run, ["a", "b", "c"]);
}

#[tokio::test]
async fn step_bodies_and_handlers_may_await_io() {
    let f = Function::new("io").trigger_event_name("shop/io").handler(|ctx: Ctx| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let v: u64 = ctx
            .step
            .run("slow", || async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(7)
            })
            .await?;
        Ok(v)
    });
    let c = client();
    let result = TestRun::new(&f, JsonEvent::new("shop/io", json!({}))).client(&c).run().await;
    assert_eq!(result.output, Ok(json!(7)));
}

#[tokio::test]
async fn failing_steps_are_retried_then_fail_the_run() {
    let f = Function::new("flaky").trigger_event_name("shop/flaky").retries(2).handler(|ctx: Ctx| async move {
        ctx.step.run("boom", || async { Err::<(), _>(Error::msg("kaput")) }).await?;
        Ok(())
    });
    let c = client();
    let t = TestRun::new(&f, JsonEvent::new("shop/flaky", json!({}))).client(&c);
    assert!(matches!(t.call().await, CallOutcome::StepFailed { retriable: true, .. }));
    assert!(matches!(t.clone().attempt(2).call().await, CallOutcome::StepFailed { retriable: false, .. }));
    let result = t.run().await;
    assert_eq!(result.output.unwrap_err().message, "kaput");
    // Three attempts of the step, then one call that re-throws inside the handler.
    assert_eq!(result.calls, 4);
}

#[tokio::test]
async fn memoized_failures_reach_user_code() {
    let f = Function::new("catcher").trigger_event_name("shop/catch").handler(|ctx: Ctx| async move {
        match ctx.step.run("risky", || async { Ok(1) }).await {
            Ok(v) => Ok(json!({"ok": v})),
            Err(Error::Step(e)) => Ok(json!({"caught": e.message})),
            Err(e) => Err(e),
        }
    });
    let c = client();
    let failed = StepError { name: "Error".into(), message: "nope".into(), stack: None };
    let t = TestRun::new(&f, JsonEvent::new("shop/catch", json!({}))).client(&c).mock_step_error("risky", failed);
    assert_eq!(t.call().await, CallOutcome::Completed(json!({"caught": "nope"})));
}

#[tokio::test]
async fn waits_and_invokes_resolve_from_mocks() {
    let f = Function::new("checkout").trigger_event::<Order>().handler(|ctx: Ctx<Order>| async move {
        let paid = ctx.step.wait_for_event::<Paid>("paid", WaitOpts::new(Duration::from_secs(60)).match_field("data.id")).await?;
        let quote: FunctionRef<Order, u32> = FunctionRef::new("quote");
        let price = ctx.step.invoke("price", &quote, Order { id: ctx.event.data.id }).await;
        Ok(json!({"paid": paid.map(|e| e.data.order), "price": price.ok()}))
    });
    let c = client();
    let t = TestRun::new(&f, Order { id: 3 }).client(&c);
    let CallOutcome::Ops(ops) = t.call().await else { panic!("wanted a wait op") };
    assert_eq!((ops[0].op.clone(), ops[0].name.as_deref()), (Opcode::WaitForEvent, Some("shop/order.paid")));
    assert_eq!(ops[0].opts, Some(json!({"timeout": "1m", "if": "event.data.id == async.data.id"})));
    let paid = json!({"name": "shop/order.paid", "data": {"order": 3}, "id": "e1", "ts": 1});
    let t = t.mock_step("paid", paid).mock_step("price", 99);
    assert_eq!(t.call().await, CallOutcome::Completed(json!({"paid": 3, "price": 99})));
    // Not mocked: the wait times out and the invoke fails (and is caught).
    let result = TestRun::new(&f, Order { id: 3 }).client(&c).run().await;
    assert_eq!(result.output, Ok(json!({"paid": null, "price": null})));
}

#[tokio::test]
async fn repeated_step_ids_get_suffixes() {
    let f = Function::new("dup").trigger_event_name("shop/dup").handler(|ctx: Ctx| async move {
        let mut out = Vec::new();
        for i in 0..3 {
            out.push(ctx.step.run("item", || async move { Ok(i) }).await?);
        }
        Ok(out)
    });
    let c = client();
    let t = TestRun::new(&f, JsonEvent::new("shop/dup", json!({}))).client(&c).mock_step("item", 0).mock_step("item:1", 1);
    assert_eq!(t.call().await, CallOutcome::StepRan { id: "item".into(), output: json!(2) });
    assert_eq!(t.run().await.output, Ok(json!([0, 1, 2])));
}

#[tokio::test]
async fn misuse_is_reported_not_hung() {
    let c = client();
    let nested = Function::new("nested").trigger_event_name("shop/n").handler(|ctx: Ctx| async move {
        let v: u32 = ctx.step.run("outer", || async { ctx.step.run("inner", || async { Ok(1) }).await }).await?;
        Ok(v)
    });
    let CallOutcome::StepFailed { error, retriable: false, .. } =
        TestRun::new(&nested, JsonEvent::new("shop/n", json!({}))).client(&c).call().await
    else {
        panic!("nested steps must fail the step")
    };
    assert!(error.message.contains("cannot be nested"), "{error:?}");

    let panics = Function::new("panics").trigger_event_name("shop/p").handler(|_ctx: Ctx| async move {
        if true {
            panic!("oops");
        }
        Ok(())
    });
    let out = TestRun::new(&panics, JsonEvent::new("shop/p", json!({}))).client(&c).call().await;
    assert!(matches!(&out, CallOutcome::Failed { retriable: true, error } if error.message.contains("oops")), "{out:?}");

    // A typed function given a payload of another shape fails without retries.
    let f = two_steps();
    let out = TestRun::new(&f, JsonEvent::new("shop/order.placed", json!({"id": "not a number"}))).client(&c).call().await;
    assert!(matches!(out, CallOutcome::Failed { retriable: false, .. }), "{out:?}");
}

#[tokio::test]
async fn on_failure_handlers_get_the_failure() {
    let f = Function::new("fragile")
        .trigger_event_name("shop/fragile")
        .on_failure(|ctx| async move { Ok(json!({"failed": ctx.event.data.function_id, "why": ctx.event.data.error.message})) })
        .handler(|_ctx: Ctx| async move { Err::<(), _>(Error::non_retriable("broken")) });
    let c = client();
    let failed = TestRun::new(&f, JsonEvent::new("shop/fragile", json!({}))).client(&c).run().await;
    let error = failed.output.unwrap_err();
    assert_eq!((error.name.as_str(), error.message.as_str()), ("NonRetriableError", "broken"));
    let handled = TestRun::on_failure(&f, "01RUN", error, json!({"name": "shop/fragile", "data": {}})).client(&c).call().await;
    assert_eq!(handled, CallOutcome::Completed(json!({"failed": "shop-fragile", "why": "broken"})));
}
