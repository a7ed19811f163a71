//! The Rust SDK's example app (`crates/ingot/examples/orders.rs`, served by
//! the binary `ingot-e2e-orders-app`) end to end against `ingot dev`: an
//! order runs its retried reservation step, invokes the invoke-only tax
//! function for a typed result, sleeps 2 s, waits for its payment event
//! (matched on the order id) and returns its receipt.

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use ingot_test_support::{Deadline, RunStatus, Sdk, TestApp, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_orders_example_runs_end_to_end() -> Result<()> {
    let app = TestApp { file: "ingot-e2e-orders-app", app_id: "orders-app".into() };
    let env = TestEnv::start_app(Sdk::Rust, app).await;
    let placed = env.send_event("shop/order.placed", json!({"order_id": "o-1", "customer": "ada", "cents": 1000})).await?;
    let run = env.wait_run_started(&placed, "fulfil-order").await?;
    // The payment is sent once the run waits for it (its timeout is queued).
    let deadline = Deadline::after(Duration::from_secs(30));
    loop {
        let jobs = env.run_jobs(&run.run_id).await?;
        if jobs.iter().any(|j| j["work"]["t"] == "timeout" && j["work"]["kind"] == "wait") {
            break;
        }
        if deadline.passed() {
            bail!("the order never waited for its payment; jobs: {jobs:?}");
        }
        deadline.tick().await?;
    }
    env.send_event("shop/order.paid", json!({"order_id": "o-1"})).await?;
    let done = env.wait_run_finished(&placed, "fulfil-order").await?;
    ensure!(done.status == RunStatus::Completed, "{done}");
    ensure!(done.output == json!({"order_id": "o-1", "reservation": "o-1-r1", "total_cents": 1200, "paid": true}), "the receipt: {done}");
    // The tax function ran as its own run, started by the invoke.
    let tax = env.runs_of("compute-tax").await?;
    ensure!(tax.len() == 1 && tax[0].status == RunStatus::Completed && tax[0].output == json!(200), "tax runs: {tax:?}");
    env.assert_no_orphans().await
}
