//! End-to-end tests of the Rust SDK (`ingot` crate) against a real
//! `ingot dev`: the same scenarios the official JS and Python SDK apps pass.
//!
//! The Rust test app is the binary `ingot-e2e-rust-app` of this package
//! (`tests/apps/rust_app.rs`); the harness runs it as a child process like
//! the other SDK apps (see `Sdk::Rust`).

use ingot_test_support::{app_scenarios as rust, scenarios, signals, Sdk, TestEnv};

macro_rules! rust_tests {
    ($($name:ident => $scenario:path),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                let env = TestEnv::start(Sdk::Rust).await;
                $scenario(&env).await.unwrap();
            }
        )*
    };
}

rust_tests! {
    hello => scenarios::hello,
    memo => scenarios::memo,
    parallel => rust::parallel,
    flaky => rust::flaky,
    non_retriable => scenarios::non_retriable,
    fn_error => rust::fn_error,
    sleep => scenarios::sleep,
    wait_matched => scenarios::wait_matched,
    wait_timed_out => scenarios::wait_timeout,
    invoke => rust::invoke,
    invoke_missing => rust::invoke_missing,
    send_fanout => rust::send_fanout,
    on_failure => rust::on_failure,
    cancel => rust::cancel,
    signal_resumes_the_waiting_run => signals::resume_and_404,
    signal_wait_times_out_to_null => signals::times_out_to_null,
    send_signal_from_one_run_resumes_another => signals::send_from_another_run,
}
