//! The Rust SDK's example app, `crates/ingot/examples/orders.rs`, built as a
//! binary of this package so `tests/e2e_example.rs` runs it against a real
//! `ingot dev` (PORT from the harness; app id `orders-app`).

#[path = "../../../ingot/examples/orders.rs"]
mod orders;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    orders::main()
}
