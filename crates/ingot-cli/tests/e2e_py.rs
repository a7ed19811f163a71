//! End-to-end tests against the official Inngest Python SDK: the Flask app in
//! tests/sdk-apps/py/app.py, synced to a real `ingot dev`.
//!
//! Needs `scripts/setup-test-deps.sh` (tests/sdk-apps/py/.venv).

use ingot_test_support::{scenarios, Sdk, TestEnv};

macro_rules! py_tests {
    ($($name:ident => $scenario:path),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                let env = TestEnv::start(Sdk::Py).await;
                $scenario(&env).await.unwrap();
            }
        )*
    };
}

py_tests! {
    hello => scenarios::hello,
    memo => scenarios::memo,
    non_retriable => scenarios::non_retriable,
    sleep => scenarios::sleep,
    wait_matched => scenarios::wait_matched,
    wait_timed_out => scenarios::wait_timeout,
}
