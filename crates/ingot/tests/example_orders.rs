//! The `orders` example (`examples/orders.rs`) run end to end through the
//! test helper: the happy path with a step that fails once, an order never
//! paid, the invoke-only tax function on its own, and the configs it
//! registers.

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;

use ingot::testing::TestRun;
use ingot::{Function, JsonEvent};
use orders::{OrderPaid, OrderPlaced, Receipt};
use serde_json::json;

fn order() -> OrderPlaced {
    OrderPlaced { order_id: "o-1".into(), customer: "ada".into(), cents: 1000 }
}

#[tokio::test]
async fn a_paid_order_gets_a_receipt_after_a_retried_reservation() {
    let tax = orders::compute_tax();
    let fulfil = orders::fulfil_order(&tax);
    let run = TestRun::new(&fulfil, order())
        .fail_step_once("reserve-stock")
        .mock_invoke("tax", &tax.reference(), 200)
        .mock_event::<OrderPaid>("await-payment", OrderPaid { order_id: "o-1".into() })
        .run()
        .await;
    let receipt: Receipt = serde_json::from_value(run.output.clone().unwrap()).unwrap();
    // The failed attempt did not run the body: the first reservation made is r1.
    assert_eq!(receipt, Receipt { order_id: "o-1".into(), reservation: "o-1-r1".into(), total_cents: 1200, paid: true });
    let reserve = run.step("reserve-stock").unwrap();
    assert_eq!(reserve.attempts, 2);
    assert_eq!(reserve.errors.len(), 1);
    assert!(reserve.errors[0].message.contains("fail_step_once"), "{:?}", reserve.errors);
    assert!(reserve.recovered());
    assert_eq!(run.steps_run, ["reserve-stock", "send-receipt"]);
    assert!(run.step("tax").is_none(), "a mocked invoke runs nothing");
}

#[tokio::test]
async fn an_unpaid_order_times_out_and_is_receipted_unpaid() {
    let tax = orders::compute_tax();
    let fulfil = orders::fulfil_order(&tax);
    let run = TestRun::new(&fulfil, order()).mock_invoke("tax", &tax.reference(), 200).mock_wait_timeout("await-payment").run().await;
    assert_eq!(run.output.as_ref().unwrap()["paid"], json!(false));
    let reserve = run.step("reserve-stock").unwrap();
    assert_eq!((reserve.attempts, reserve.recovered()), (1, false));
}

#[tokio::test]
async fn an_invoke_that_is_not_mocked_fails_the_run() {
    let tax = orders::compute_tax();
    let fulfil = orders::fulfil_order(&tax);
    let run = TestRun::new(&fulfil, order()).run().await;
    let error = run.output.unwrap_err();
    assert!(error.message.contains("test-app-compute-tax is not mocked"), "{error:?}");
}

#[tokio::test]
async fn the_tax_function_is_invoke_only() {
    let tax = orders::compute_tax();
    let invoked = JsonEvent::new("inngest/function.invoked", json!({"cents": 1000, "_inngest": {"fn_id": "test-app-compute-tax"}}));
    assert_eq!(TestRun::new(&tax, invoked).run().await.output, Ok(json!(200)));
    let zero = JsonEvent::new("inngest/function.invoked", json!({"cents": 0}));
    let run = TestRun::new(&tax, zero).run().await;
    assert_eq!(run.output.unwrap_err().message, "an order of 0 cents has no tax");

    // It registers one trigger, matching only invokes of itself.
    let configs = Function::from(tax).configs("orders-app", "http://127.0.0.1:3000/api/inngest");
    let trigger = serde_json::to_value(&configs[0].triggers).unwrap();
    assert_eq!(
        trigger,
        json!([{"event": "inngest/function.invoked", "expression": "event.data._inngest.fn_id == 'orders-app-compute-tax'"}])
    );
}

#[test]
fn the_app_serves_both_functions() {
    let ids: Vec<String> = orders::functions().iter().map(|f| f.id().to_string()).collect();
    assert_eq!(ids, ["compute-tax", "fulfil-order"]);
}
