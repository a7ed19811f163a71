//! The dashboard in headless Chromium: `ingot dev` with the official JS SDK
//! test app (inngest v4), driven by the node test script in tests/browser/
//! (playwright-core over Debian's /usr/bin/chromium). The script opens every
//! page, sends an event from the UI and watches its run appear and finish
//! live, opens timelines, cancels a sleeping run, reruns a failed one, bulk
//! cancels, pauses and invokes. `charts.test.mjs` runs against an engine of
//! its own, so the runs its charts count are exactly the ones it started.
//! Screenshots land in tests/artifacts/.
//!
//! Needs `scripts/setup-test-deps.sh` (chromium, tests/browser/node_modules).

use std::path::{Path, PathBuf};

use ingot_test_support::{Sdk, TestEnv};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_in_headless_chromium() {
    node_tests("dashboard.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn charts_in_headless_chromium() {
    node_tests("charts.test.mjs").await;
}

/// Runs one script of tests/browser/ with `node --test` against a fresh
/// `ingot dev` and the JS SDK test app.
async fn node_tests(script: &str) {
    let root = repo_root();
    let browser_dir = root.join("tests/browser");
    let chromium = std::env::var_os("INGOT_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(chromium.exists(), "{} is missing: run scripts/setup-test-deps.sh", chromium.display());
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules: run scripts/setup-test-deps.sh",
        browser_dir.display()
    );
    let artifacts = root.join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("creating tests/artifacts");

    let env = TestEnv::start(Sdk::JsV4).await;
    let node = std::env::var_os("INGOT_E2E_NODE").unwrap_or_else(|| "node".into());
    let status = tokio::process::Command::new(node)
        .args(["--test", "--test-reporter=spec", script])
        .current_dir(&browser_dir)
        .env("INGOT_URL", &env.base)
        .env("APP_ID", Sdk::JsV4.app_id())
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", &chromium)
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .expect("running node --test");
    // Panicking while `env` is alive prints the engine's and the app's logs.
    assert!(status.success(), "{script} failed ({status}); screenshots are in {}", artifacts.display());
}
