//! The `ingot` client commands (`send`, `runs`, `run`, `cancel`, `replay`)
//! and the `dev`/`start` flags, run as a user runs them: the binary against a
//! real `ingot dev` serving the Rust SDK app (`Sdk::Rust`). Each bad input
//! (unknown run or event, bad JSON, an engine that is not there) must give a
//! one-line error and exit 1.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ingot_test_support::{bin_path, free_port, scrub_inngest_env, Deadline, EngineProc, RunStatus, Sdk, TestEnv, WAIT_TIMEOUT};
use serde_json::{json, Value};

/// Runs `ingot ARGS` (with `stdin` piped in, if any) and waits for it.
fn ingot(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin_path("ingot"));
    scrub_inngest_env(&mut cmd);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("spawning ingot");
    if let Some(input) = stdin {
        child.stdin.take().expect("piped stdin").write_all(input.as_bytes()).expect("writing stdin");
    }
    child.wait_with_output().expect("waiting for ingot")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 0, or panic with what the command printed.
fn ok(o: Output) -> String {
    assert!(o.status.success(), "ingot failed ({}):\nstdout: {}\nstderr: {}", o.status, stdout(&o), stderr(&o));
    stdout(&o)
}

/// Exit 1 with exactly one line on stderr, `error: ...` containing `needle`.
fn one_line_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "wanted exit 1:\nstdout: {}\nstderr: {err}", stdout(o));
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "wanted one line on stderr, got: {err:?}");
    assert!(lines[0].starts_with("error: "), "stderr does not start with `error: `: {err:?}");
    assert!(lines[0].contains(needle), "stderr does not mention {needle:?}: {err:?}");
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn send_wait_prints_the_run_and_its_output() {
    let env = TestEnv::start(Sdk::Rust).await;
    let out = ok(ingot(&["send", "e2e/hello", "--data", r#"{"name": "Ingot"}"#, "--wait", "--url", &env.base], None));
    assert!(out.contains("e2e-rust-hello: Completed"), "{out}");
    assert!(out.contains("Hello Ingot"), "the output is printed: {out}");

    let out = ok(ingot(&["send", "e2e/hello", "--data", r#"{"name": "J"}"#, "--wait", "--json", "--url", &env.base], None));
    let v = json_of(&out);
    assert_eq!(v["runs"][0]["status"], "Completed", "{v}");
    assert_eq!(v["runs"][0]["output"], json!({"message": "Hello J"}), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_wait_exits_1_when_the_run_fails() {
    let env = TestEnv::start(Sdk::Rust).await;
    let o = ingot(&["send", "e2e/nonretriable", "--wait", "--url", &env.base], None);
    assert!(stdout(&o).contains("e2e-rust-non-retriable: Failed"), "{}", stdout(&o));
    assert!(stdout(&o).contains("nope"), "the error output is printed: {}", stdout(&o));
    one_line_error(&o, "did not complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_reads_data_from_a_file_and_stdin_with_id_and_ts() {
    let env = TestEnv::start(Sdk::Rust).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.json");
    std::fs::write(&file, r#"{"name": "from-file"}"#).unwrap();
    let at_file = format!("@{}", file.display());
    let out =
        ok(ingot(&["send", "e2e/hello", "--data", &at_file, "--id", "evt-1", "--ts", "1767225600000", "--json", "--url", &env.base], None));
    let id = json_of(&out)["event_id"].as_str().expect("event_id").to_string();
    let stored = env.http.get(format!("{}/v1/events/{id}", env.base)).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(stored["data"]["data"], json!({"name": "from-file"}), "{stored}");
    assert_eq!(stored["data"]["id"], "evt-1", "{stored}");
    assert_eq!(stored["data"]["ts"], 1767225600000i64, "{stored}");
    let run = env.wait_run_finished(&id, "hello").await.unwrap();
    assert_eq!(run.output, json!({"message": "Hello from-file"}));

    let out = ok(ingot(&["send", "e2e/hello", "--data", "-", "--url", &env.base], Some(r#"{"name": "from-stdin"}"#)));
    let id = out.trim().rsplit(' ').next().unwrap().to_string();
    assert!(out.starts_with("sent e2e/hello: event "), "{out}");
    let run = env.wait_run_finished(&id, "hello").await.unwrap();
    assert_eq!(run.output, json!({"message": "Hello from-stdin"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn send_refuses_bad_data_in_one_line() {
    let engine = EngineProc::start(&[]).await.unwrap();
    let url = engine.base.as_str();
    one_line_error(&ingot(&["send", "x/y", "--data", "{nope", "--url", url], None), "--data is not valid JSON");
    one_line_error(&ingot(&["send", "x/y", "--data", "[1, 2]", "--url", url], None), "must be a JSON object");
    one_line_error(&ingot(&["send", "x/y", "--data", "-", "--url", url], Some("not json")), "stdin is not valid JSON");
    one_line_error(&ingot(&["send", "x/y", "--data", "@/nonexistent/data.json", "--url", url], None), "cannot read --data file");
    // Nothing was stored.
    let events: Value = engine.http.get(format!("{url}/v1/events?name=x/y")).send().await.unwrap().json().await.unwrap();
    assert_eq!(events["data"], json!([]), "{events}");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_lists_as_a_table_and_as_json_with_filters() {
    let env = TestEnv::start(Sdk::Rust).await;
    let done = env.trigger_and_wait("e2e/hello", json!({"name": "a"}), "hello").await.unwrap();
    let failed = env.trigger_and_wait("e2e/nonretriable", json!({}), "non-retriable").await.unwrap();

    let table = ok(ingot(&["runs", "--url", &env.base], None));
    let header = table.lines().next().unwrap_or_default();
    for col in ["RUN ID", "STATUS", "FUNCTION", "STARTED", "ENDED", "OUTPUT"] {
        assert!(header.contains(col), "header lacks {col}: {table}");
    }
    assert!(table.lines().any(|l| l.starts_with(&done.run_id) && l.contains("Completed")), "{table}");
    assert!(table.lines().any(|l| l.starts_with(&failed.run_id) && l.contains("Failed")), "{table}");

    let only_failed = json_of(&ok(ingot(&["runs", "--status", "failed", "--json", "--url", &env.base], None)));
    let ids: Vec<&str> = only_failed.as_array().unwrap().iter().filter_map(|r| r["run_id"].as_str()).collect();
    assert_eq!(ids, [failed.run_id.as_str()], "{only_failed}");

    let slug = env.slug("hello");
    let of_hello = json_of(&ok(ingot(&["runs", "--function", &slug, "--limit", "5", "--json", "--url", &env.base], None)));
    assert!(of_hello.as_array().unwrap().iter().all(|r| r["function_slug"] == json!(slug)), "{of_hello}");
    assert_eq!(of_hello.as_array().unwrap().len(), 1, "{of_hello}");

    let none = ok(ingot(&["runs", "--function", "no-such-fn", "--url", &env.base], None));
    assert_eq!(none.trim(), "no runs");
    // clap refuses a status it does not know (exit 2, with the choices).
    let bad = ingot(&["runs", "--status", "Sleeping", "--url", &env.base], None);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("Running, Completed, Failed, Cancelled"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_shows_the_timeline_and_unknown_runs_fail_in_one_line() {
    let env = TestEnv::start(Sdk::Rust).await;
    let run = env.trigger_and_wait("e2e/flaky", json!({}), "flaky").await.unwrap();
    let text = ok(ingot(&["run", &run.run_id, "--url", &env.base], None));
    assert!(text.starts_with(&format!("run       {}  Completed", run.run_id)), "{text}");
    assert!(text.contains("e2e-rust-flaky (Flaky)"), "{text}");
    assert!(text.contains("event     e2e/flaky"), "{text}");
    let step = text.lines().find(|l| l.trim_start().starts_with("flaky-step")).unwrap_or_else(|| panic!("no step row: {text}"));
    assert!(step.contains("run") && step.contains("Completed") && step.contains("\"ok\""), "{step}");

    let v = json_of(&ok(ingot(&["run", &run.run_id, "--json", "--url", &env.base], None)));
    assert_eq!(v["run"]["run_id"], json!(run.run_id), "{v}");
    assert!(v["trace"]["children"].as_array().is_some_and(|c| !c.is_empty()), "{v}");

    one_line_error(&ingot(&["run", "01JAAAAAAAAAAAAAAAAAAAAAAA", "--url", &env.base], None), "not found");
    one_line_error(&ingot(&["run", "not-a-run-id", "--url", &env.base], None), "not found");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_ends_running_runs_and_reports_each_failure() {
    let env = TestEnv::start(Sdk::Rust).await;
    let a = env.send_event("e2e/cancellable", json!({})).await.unwrap();
    let b = env.send_event("e2e/cancellable", json!({})).await.unwrap();
    let a = env.wait_run_started(&a, "cancellable").await.unwrap();
    let b = env.wait_run_started(&b, "cancellable").await.unwrap();
    let out = ok(ingot(&["cancel", &a.run_id, &b.run_id, "--url", &env.base], None));
    assert_eq!(out, format!("cancelled {}\ncancelled {}\n", a.run_id, b.run_id));
    for id in [&a.run_id, &b.run_id] {
        assert_eq!(env.run(id).await.unwrap().status, RunStatus::Cancelled);
    }
    // Again: both already ended; an unknown id is not found. Each is one
    // line on stderr, then the summary.
    let o = ingot(&["cancel", &a.run_id, "01JAAAAAAAAAAAAAAAAAAAAAAA", "--url", &env.base], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].contains("already ended"), "{err}");
    assert!(lines[1].contains("not found"), "{err}");
    assert_eq!(lines[2], "error: 2 of 2 runs not cancelled");
    let v = json_of(&stdout(&ingot(&["cancel", &b.run_id, "--json", "--url", &env.base], None)));
    assert_eq!(v[0]["cancelled"], false, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_sends_the_event_again_and_waits() {
    let env = TestEnv::start(Sdk::Rust).await;
    let first = env.send_event("e2e/hello", json!({"name": "again"})).await.unwrap();
    env.wait_run_finished(&first, "hello").await.unwrap();
    let out = ok(ingot(&["replay", &first, "--wait", "--url", &env.base], None));
    assert!(out.contains("e2e-rust-hello: Completed") && out.contains("Hello again"), "{out}");
    let runs = env.runs_of("hello").await.unwrap();
    assert_eq!(runs.len(), 2, "the replay started a second run: {runs:?}");

    let v = json_of(&ok(ingot(&["replay", &first, "--json", "--url", &env.base], None)));
    let new_id = v["event_id"].as_str().unwrap();
    assert_ne!(new_id, first);
    env.wait_run_finished(new_id, "hello").await.unwrap();

    one_line_error(&ingot(&["replay", "01JAAAAAAAAAAAAAAAAAAAAAAA", "--url", &env.base], None), "not found");
}

#[test]
fn every_client_command_fails_in_one_line_when_the_engine_is_not_there() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let id = "01JAAAAAAAAAAAAAAAAAAAAAAA";
    for args in
        [vec!["send", "x/y"], vec!["send", "x/y", "--wait"], vec!["runs"], vec!["run", id], vec!["cancel", id, id], vec!["replay", id]]
    {
        let mut args = args.clone();
        args.extend(["--url", &url]);
        let o = ingot(&args, None);
        one_line_error(&o, &format!("cannot reach the engine at {url}"));
    }
}

#[test]
fn help_shows_examples_and_dev_shows_only_its_flags() {
    for cmd in ["dev", "start", "send", "runs", "run", "cancel", "replay"] {
        let help = ok(ingot(&[cmd, "--help"], None));
        assert!(help.contains("Examples:\n  ingot "), "`ingot {cmd} --help` has no examples:\n{help}");
    }
    let dev = ok(ingot(&["dev", "--help"], None));
    for absent in ["--signing-key", "--event-key", "--redis-uri", "--tick <", "--postgres-max-idle-conns <"] {
        assert!(!dev.contains(absent), "`ingot dev --help` shows {absent}:\n{dev}");
    }
    for present in ["--sdk-url", "--no-discovery", "--log-level", "--config", "--queue-workers", "--no-ui", "--postgres-uri"] {
        assert!(dev.contains(present), "`ingot dev --help` lacks {present}:\n{dev}");
    }
    let start = ok(ingot(&["start", "--help"], None));
    for present in ["--signing-key", "--event-key", "--sqlite-dir", "--no-ui"] {
        assert!(start.contains(present), "`ingot start --help` lacks {present}:\n{start}");
    }
    assert!(!start.contains("--no-discovery"), "{start}");
}

/// Polls the engine's log until it has a line containing `needle`.
async fn wait_log(path: &Path, needle: &str) -> String {
    let deadline = Deadline::after(WAIT_TIMEOUT);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        deadline.tick().await.unwrap_or_else(|_| panic!("{} never logged {needle:?}:\n{text}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_accepts_the_flags_of_inngest_dev_with_a_notice_for_those_it_ignores() {
    let args = [
        "--log-level",
        "trace",
        "--verbose",
        "--tick",
        "150",
        "--queue-workers",
        "4",
        "--persist",
        "--postgres-max-idle-conns",
        "5",
        "--connect-gateway-port",
        "8289",
        "--debug-api-port",
        "7777",
    ];
    let engine = EngineProc::start(&args).await.unwrap();
    let log = wait_log(&engine.dir().join("engine-0.log"), "--debug-api-port").await;
    for notice in ["--tick: ignored", "--postgres-max-idle-conns: ignored", "--connect-gateway-port: ignored", "--persist: always on"] {
        assert_eq!(log.lines().filter(|l| l.contains(notice)).count(), 1, "one notice {notice:?}:\n{log}");
    }
    let r = engine.http.get(format!("{}/", engine.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "dev serves the dashboard");
}

#[tokio::test(flavor = "multi_thread")]
async fn start_accepts_redis_and_no_ui_turns_the_dashboard_off() {
    let args = [
        "--signing-key",
        "signkey-test-4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837",
        "--event-key",
        "event-key-0123456789abcdef0123456789abcdef",
        "--redis-uri",
        "redis://localhost:6379",
        "--no-ui",
    ];
    let engine = EngineProc::start_command("start", &args).await.unwrap();
    wait_log(&engine.dir().join("engine-0.log"), "--redis-uri: ignored").await;
    for path in ["/", "/runs", "/runs/01JAAAAAAAAAAAAAAAAAAAAAAA", "/assets/app.js", "/v0/gql"] {
        let r = engine
            .http
            .get(format!("{}{path}", engine.base))
            .bearer_auth("signkey-test-4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} with --no-ui");
    }
    let r = engine
        .http
        .get(format!("{}/v1/runs", engine.base))
        .bearer_auth("signkey-test-4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the REST API stays");
    // The client commands send the signing key.
    let out = ok(ingot(
        &["runs", "--url", &engine.base, "--signing-key", "signkey-test-4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837"],
        None,
    ));
    assert_eq!(out.trim(), "no runs");
    one_line_error(&ingot(&["runs", "--url", &engine.base], None), "a token is required");
}

/// `ingot dev` started by hand (for flags `EngineProc` sets itself); killed on drop.
struct Dev(std::process::Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_dev(dir: &Path, args: &[&str]) -> Dev {
    let mut cmd = Command::new(bin_path("ingot"));
    scrub_inngest_env(&mut cmd);
    cmd.env_remove("RUST_LOG").current_dir(dir).arg("dev").args(args);
    let log = std::fs::File::create(dir.join("dev.log")).unwrap();
    cmd.stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null());
    Dev(cmd.spawn().expect("spawning ingot dev"))
}

async fn wait_health(port: u16) {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = Deadline::after(WAIT_TIMEOUT);
    while !http.get(format!("http://127.0.0.1:{port}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
        deadline.tick().await.unwrap_or_else(|_| panic!("nothing answered on port {port}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_file_sets_flags_and_command_line_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, flag_port) = (free_port(), free_port());
    let yaml = dir.path().join("inngest.yaml");
    std::fs::write(
        &yaml,
        format!("port: {file_port}\nno-discovery: true\nqueue-workers: 3\nsdk-url:\n  - http://127.0.0.1:1/api/inngest\nnot-a-flag: 1\n"),
    )
    .unwrap();
    // Found in the working directory without --config.
    let _dev = spawn_dev(dir.path(), &["--db", "a.db"]);
    wait_health(file_port).await;
    let log = wait_log(&dir.path().join("dev.log"), "not-a-flag").await;
    assert!(log.contains("using config"), "{log}");

    // A JSON file named by --config; --port on the command line wins.
    let other = tempfile::tempdir().unwrap();
    let json_file = other.path().join("settings.json");
    std::fs::write(&json_file, format!(r#"{{"port": {file_port}, "no-discovery": true}}"#)).unwrap();
    let config = json_file.display().to_string();
    let _dev2 = spawn_dev(other.path(), &["--config", &config, "--port", &flag_port.to_string(), "--db", "b.db"]);
    wait_health(flag_port).await;

    let bad = other.path().join("bad.json");
    std::fs::write(&bad, "{port: ").unwrap();
    let o = ingot(&["dev", "--config", &bad.display().to_string()], None);
    one_line_error(&o, "is not valid JSON");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_level_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = port.to_string();
    let _dev = spawn_dev(dir.path(), &["--port", &p, "--no-discovery", "--db", "a.db", "--log-level", "warn", "--json", "--tick", "10"]);
    wait_health(port).await;
    let log = wait_log(&dir.path().join("dev.log"), "--tick").await;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert_ne!(v["level"], "INFO", "--log-level warn still logged info: {line}");
    }

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = port.to_string();
    let _dev =
        spawn_dev(dir.path(), &["--port", &p, "--no-discovery", "--db", "a.db", "--verbose", "-u", "http://127.0.0.1:1/api/inngest"]);
    wait_health(port).await;
    // A failed sync is logged at debug level only.
    wait_log(&dir.path().join("dev.log"), "app did not sync").await;
}
