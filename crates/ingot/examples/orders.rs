//! An order workflow on the `ingot` SDK: an invoke-only function that
//! computes tax, and a function on `shop/order.placed` that reserves stock
//! (a step that may fail and is retried), invokes the tax function with a
//! typed result, sleeps, waits for `shop/order.paid`, and sends a receipt,
//! with one run at a time per customer. Its tests are in
//! `tests/example_orders.rs`.
//!
//! Run it against a local engine:
//!
//! ```text
//! ingot dev -u http://127.0.0.1:3000/api/inngest      # or: npx inngest-cli dev -u ...
//! INNGEST_DEV=1 RUST_LOG=info cargo run -p ingot --example orders
//! curl -X POST http://127.0.0.1:8288/e/dev -d '{"name":"shop/order.placed","data":{"order_id":"o-1","customer":"ada","cents":1000}}'
//! curl -X POST http://127.0.0.1:8288/e/dev -d '{"name":"shop/order.paid","data":{"order_id":"o-1"}}'
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use ingot::{Client, Concurrency, Ctx, Function, Invoked, TypedFunction, WaitOpts};
use serde::{Deserialize, Serialize};

/// `shop/order.placed`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub customer: String,
    pub cents: u64,
}

/// `shop/order.paid`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPaid {
    pub order_id: String,
}

ingot::event!(OrderPlaced = "shop/order.placed"; OrderPaid = "shop/order.paid");

/// What `compute-tax` is invoked with.
#[derive(Debug, Serialize, Deserialize)]
pub struct TaxRequest {
    pub cents: u64,
}

/// What a run of `fulfil-order` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub order_id: String,
    pub reservation: String,
    pub total_cents: u64,
    pub paid: bool,
}

/// The handlers' state: a stand-in for a database pool.
#[derive(Default)]
pub struct Warehouse {
    reservations: AtomicU32,
}

/// Invoke-only: no event starts it; `step.invoke` gets a `u64` back.
pub fn compute_tax() -> TypedFunction<Invoked<TaxRequest>, u64> {
    Function::new("compute-tax").trigger_invoke::<TaxRequest>().handler(|ctx: Ctx<Invoked<TaxRequest>>| async move {
        ingot::ensure!(ctx.event.data.cents > 0, "an order of 0 cents has no tax");
        Ok(ctx.event.data.cents / 5)
    })
}

/// The order workflow.
pub fn fulfil_order(tax: &TypedFunction<Invoked<TaxRequest>, u64>) -> TypedFunction<OrderPlaced, Receipt> {
    let tax = tax.reference();
    Function::new("fulfil-order")
        .trigger_event::<OrderPlaced>()
        .concurrency(Concurrency::new(1).key("event.data.customer"))
        .retries(3)
        .with_state(Warehouse::default())
        .handler(move |ctx: Ctx<OrderPlaced>| {
            let tax = tax.clone();
            async move {
                let order = &ctx.event.data;
                let warehouse = ctx.state::<Warehouse>()?;
                // A failed attempt (an error from the body) is retried on
                // its own; the steps before it are not run again.
                let reservation: String = ctx
                    .step
                    .run("reserve-stock", || async {
                        let n = warehouse.reservations.fetch_add(1, Ordering::SeqCst) + 1;
                        Ok(format!("{}-r{n}", order.order_id))
                    })
                    .await?;
                let tax_cents = ctx.step.invoke("tax", &tax, TaxRequest { cents: order.cents }).await?;
                ctx.step.sleep("cool-off", "2s").await?;
                let paid = ctx.step.wait_for_event::<OrderPaid>("await-payment", WaitOpts::new("1h").match_field("data.order_id")).await?;
                let receipt =
                    Receipt { order_id: order.order_id.clone(), reservation, total_cents: order.cents + tax_cents, paid: paid.is_some() };
                let receipt: Receipt = ctx
                    .step
                    .run("send-receipt", || async move {
                        tracing::info!(order = %receipt.order_id, paid = receipt.paid, "receipt sent");
                        Ok(receipt)
                    })
                    .await?;
                Ok(receipt)
            }
        })
}

/// Every function of the app.
pub fn functions() -> Vec<Function> {
    let tax = compute_tax();
    let fulfil = fulfil_order(&tax);
    ingot::functions![tax, fulfil]
}

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // INNGEST_DEV=1 for a local engine; otherwise INNGEST_SIGNING_KEY and
    // INNGEST_EVENT_KEY are required (a missing one is printed in full).
    let client = Client::new("orders-app")?;
    let app = ingot::serve(&client, functions());
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    // Serving does not sync: `ingot dev -u <this URL>` (or a PUT to it) does.
    println!("serving http://127.0.0.1:{port}/api/inngest");
    axum::serve(listener, app).await?;
    Ok(())
}
