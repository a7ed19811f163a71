//! `GET /metrics` after known runs of the official JS SDK app (inngest v3
//! and v4) on a real `ingot dev`: the text passes `promtool check metrics`
//! (Debian's `prometheus` package, installed by scripts/setup-test-deps.sh),
//! and the counters hold exactly what the runs did.
//!
//! Needs `scripts/setup-test-deps.sh` (node_modules, promtool).

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use ingot_test_support::{scenarios, Sdk, TestEnv};

/// The samples of a scrape: `name{labels}` (labels as printed) → value.
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut samples = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            let value = value.parse::<f64>().unwrap_or_else(|e| panic!("{line:?}: {e}"));
            samples.insert(series.to_string(), value);
        }
        Scrape { text, samples }
    }

    fn value(&self, series: &str) -> f64 {
        *self.samples.get(series).unwrap_or_else(|| panic!("no sample {series} in\n{}", self.text))
    }

    fn kind(&self, family: &str) -> &str {
        let prefix = format!("# TYPE {family} ");
        self.text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no TYPE line for {family}"))
    }
}

async fn scrape(env: &TestEnv) -> Scrape {
    let resp = env.http.get(format!("{}/metrics", env.base)).send().await.expect("GET /metrics");
    assert!(resp.status().is_success(), "GET /metrics: {}", resp.status());
    let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "content type {ctype:?}");
    let text = resp.text().await.expect("metrics body");
    promtool_check(&text);
    Scrape::parse(text)
}

/// `promtool check metrics` reads the exposition from stdin and lints it.
fn promtool_check(text: &str) {
    let promtool = std::env::var("INGOT_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool} could not run ({e}): run scripts/setup-test-deps.sh"));
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn counts_after_known_runs(sdk: Sdk) {
    let env = TestEnv::start(sdk).await;
    let before = scrape(&env).await;
    assert_eq!(before.kind("ingot_queue_depth"), "gauge");
    assert_eq!(before.kind("ingot_queue_lag_seconds"), "histogram");
    assert!(before.value("process_resident_memory_bytes") > 0.0);
    for _ in 0..3 {
        scenarios::hello(&env).await.unwrap();
    }
    scenarios::non_retriable(&env).await.unwrap();

    let m = scrape(&env).await;
    // Labelled families appear once they have a sample.
    for (family, kind) in [
        ("ingot_runs_total", "counter"),
        ("ingot_steps_total", "counter"),
        ("ingot_events_total", "counter"),
        ("ingot_step_duration_seconds", "histogram"),
        ("ingot_store_commit_seconds", "histogram"),
    ] {
        assert_eq!(m.kind(family), kind, "{family}");
    }
    let (hello, doomed) = (env.slug("hello"), env.slug("non-retriable"));
    let v = |series: String| m.value(&series);
    assert_eq!(v(format!("ingot_runs_total{{function=\"{hello}\",status=\"started\"}}")), 3.0);
    assert_eq!(v(format!("ingot_runs_total{{function=\"{hello}\",status=\"Completed\"}}")), 3.0);
    assert_eq!(v(format!("ingot_runs_total{{function=\"{doomed}\",status=\"started\"}}")), 1.0);
    assert_eq!(v(format!("ingot_runs_total{{function=\"{doomed}\",status=\"Failed\"}}")), 1.0);
    assert!(!m.text.contains(&format!("ingot_runs_total{{function=\"{hello}\",status=\"Failed\"}}")));
    assert_eq!(v("ingot_events_total{name=\"e2e/hello\"}".into()), 3.0);
    assert_eq!(v("ingot_events_total{name=\"e2e/nonretriable\"}".into()), 1.0);
    assert_eq!(v("ingot_events_total{name=\"inngest/function.finished\"}".into()), 4.0);
    assert_eq!(v("ingot_events_total{name=\"inngest/function.failed\"}".into()), 1.0);
    // hello runs one step (`greet`) per run; non-retriable's `doomed` fails for good.
    assert_eq!(v(format!("ingot_steps_total{{function=\"{hello}\",outcome=\"completed\"}}")), 3.0);
    assert_eq!(v(format!("ingot_steps_total{{function=\"{doomed}\",outcome=\"failed\"}}")), 1.0);
    // Every call is timed and every queue item claimed was measured.
    let calls = v(format!("ingot_step_duration_seconds_count{{function=\"{hello}\"}}"));
    assert!(calls >= 3.0, "{calls} calls timed for 3 hello runs");
    assert!(v("ingot_queue_lag_seconds_count".into()) >= calls, "every call was claimed from the queue");
    assert_eq!(v("ingot_queue_depth{when=\"due\"}".into()), 0.0, "nothing is waiting once every run ended");
    assert!(v("ingot_store_commit_seconds_count".into()) > before.value("ingot_store_commit_seconds_count"));
    // Conflicts are normal (a checkpoint and a reply racing); nothing else failed.
    assert!(!m.text.contains("ingot_store_commit_errors_total{kind=\"other\"}"), "{}", m.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_after_js_v3_runs() {
    counts_after_known_runs(Sdk::JsV3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_after_js_v4_runs() {
    counts_after_known_runs(Sdk::JsV4).await;
}
