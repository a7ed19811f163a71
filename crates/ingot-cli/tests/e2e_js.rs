//! End-to-end tests against the official Inngest JS SDK, v3 and v4: the app
//! in tests/sdk-apps/js/app.cjs served on node, synced to a real `ingot dev`.
//!
//! Every scenario runs once per SDK major (modules `v3` and `v4`).
//! Needs `scripts/setup-test-deps.sh` (node_modules).

use ingot_test_support::{app_scenarios as js, scenarios, Sdk, TestEnv};

/// One `#[tokio::test]` per scenario and SDK major. Each test has its own
/// engine and app; a failing scenario panics while its `TestEnv` is alive,
/// so the engine and app logs are printed.
macro_rules! js_tests {
    ($($name:ident => $scenario:path),* $(,)?) => {
        mod v3 {
            use super::{js, scenarios, Sdk, TestEnv};
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let env = TestEnv::start(Sdk::JsV3).await;
                    $scenario(&env).await.unwrap();
                }
            )*
        }
        mod v4 {
            use super::{js, scenarios, Sdk, TestEnv};
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let env = TestEnv::start(Sdk::JsV4).await;
                    $scenario(&env).await.unwrap();
                }
            )*
        }
    };
}

js_tests! {
    hello => scenarios::hello,
    memo => scenarios::memo,
    parallel => js::parallel,
    flaky => js::flaky,
    non_retriable => scenarios::non_retriable,
    fn_error => js::fn_error,
    sleep => scenarios::sleep,
    wait_matched => scenarios::wait_matched,
    wait_timed_out => scenarios::wait_timeout,
    invoke => js::invoke,
    invoke_missing => js::invoke_missing,
    send_fanout => js::send_fanout,
    on_failure => js::on_failure,
    cancel => js::cancel,
}
