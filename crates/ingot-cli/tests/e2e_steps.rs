//! End-to-end tests of the step tools the engine carries out itself, with the
//! official JS SDK v4 (functions `signal-waiter`, `signal-sender`, `fetcher`,
//! `inferer` and `racer` of tests/sdk-apps/js/app.cjs): signals
//! (`step.waitForSignal`, `POST /v1/signals`, `step.sendSignal`),
//! `step.fetch` against a loopback HTTP server, `step.ai.infer` against a
//! loopback server speaking the OpenAI chat and Anthropic formats, and
//! `group.parallel({ mode: "race" })`.
//!
//! Needs `scripts/setup-test-deps.sh` (node_modules).

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, ensure, Result};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use ingot_test_support::{signals, RunStatus, Sdk, TestEnv};
use serde_json::{json, Value};

/// One request the loopback server received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A loopback HTTP server standing in for an API and for model providers.
struct Upstream {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    async fn start() -> Upstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = |path: &'static str, seen: Arc<Mutex<Vec<Seen>>>| {
            move |headers: HeaderMap, body: String| {
                seen.lock().unwrap().push(Seen { path: path.into(), headers, body });
                async {}
            }
        };
        let app = Router::new()
            .route(
                "/echo",
                post({
                    let record = log("/echo", seen.clone());
                    move |headers: HeaderMap, body: String| async move {
                        let echoed = format!("echo:{body}");
                        record(headers, body).await;
                        ([("x-reply", "pong")], echoed)
                    }
                }),
            )
            .route(
                "/broken",
                post({
                    let record = log("/broken", seen.clone());
                    move |headers: HeaderMap, body: String| async move {
                        record(headers, body).await;
                        (StatusCode::INTERNAL_SERVER_ERROR, "upstream broke")
                    }
                }),
            )
            .route(
                "/v1/chat/completions",
                post({
                    let record = log("/v1/chat/completions", seen.clone());
                    move |headers: HeaderMap, body: String| async move {
                        record(headers, body).await;
                        axum::Json(json!({"id": "chatcmpl-1", "object": "chat.completion",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from the fake openai"}, "finish_reason": "stop"}]}))
                    }
                }),
            )
            .route(
                "/v1/messages",
                post({
                    let record = log("/v1/messages", seen.clone());
                    move |headers: HeaderMap, body: String| async move {
                        record(headers, body).await;
                        axum::Json(json!({"id": "msg_1", "type": "message", "role": "assistant",
                            "content": [{"type": "text", "text": "hello from the fake anthropic"}], "stop_reason": "end_turn"}))
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the loopback server");
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Upstream { base, seen }
    }

    fn requests_to(&self, path: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.path == path).cloned().collect()
    }
}

fn header(s: &Seen, name: &str) -> Option<String> {
    s.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_resumes_the_waiting_run_and_an_unused_one_is_404() -> Result<()> {
    signals::resume_and_404(&TestEnv::start(Sdk::JsV4).await).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_wait_times_out_to_null() -> Result<()> {
    signals::times_out_to_null(&TestEnv::start(Sdk::JsV4).await).await
}

#[tokio::test(flavor = "multi_thread")]
async fn send_signal_from_one_run_resumes_another() -> Result<()> {
    signals::send_from_another_run(&TestEnv::start(Sdk::JsV4).await).await
}

#[tokio::test(flavor = "multi_thread")]
async fn step_fetch_makes_the_request_and_returns_the_response() -> Result<()> {
    let upstream = Upstream::start().await;
    let env = TestEnv::start(Sdk::JsV4).await;
    let event = env.send_event("e2e/fetch", json!({"url": format!("{}/echo", upstream.base)})).await?;
    let done = env.wait_run_finished(&event, "fetcher").await?;
    ensure!(done.status == RunStatus::Completed, "{done}");
    ensure!(
        done.output == json!({"status": 200, "text": "echo:{\"hello\":\"world\"}", "reply_header": "pong"}),
        "the response came back to the function: {done}"
    );
    let seen = upstream.requests_to("/echo");
    ensure!(seen.len() == 1, "one request: {seen:?}");
    ensure!(header(&seen[0], "x-e2e").as_deref() == Some("fetch-header"), "headers arrive: {seen:?}");
    ensure!(seen[0].body == "{\"hello\":\"world\"}", "the body arrives: {seen:?}");
    // The request is a step on the run's timeline, with its response and timing.
    let timeline: Value = env.http.get(format!("{}/v1/runs/{}/timeline", env.base, done.run_id)).send().await?.json().await?;
    let step = timeline["trace"]["children"].as_array().and_then(|c| c.iter().find(|s| s["name"] == "step.fetch: 127.0.0.1").cloned());
    let step = step.ok_or_else(|| anyhow!("no step.fetch step on the timeline: {timeline}"))?;
    ensure!(step["output"]["status_code"] == 200 && step["duration_ms"].is_i64(), "{step}");
    env.assert_no_orphans().await
}

#[tokio::test(flavor = "multi_thread")]
async fn step_fetch_returns_a_500_to_the_function_as_inngest_does() -> Result<()> {
    let upstream = Upstream::start().await;
    let env = TestEnv::start(Sdk::JsV4).await;
    let event = env.send_event("e2e/fetch", json!({"url": format!("{}/broken", upstream.base)})).await?;
    let done = env.wait_run_finished(&event, "fetcher").await?;
    ensure!(done.status == RunStatus::Completed, "{done}");
    ensure!(done.output["status"] == 500 && done.output["text"] == "upstream broke", "{done}");
    ensure!(upstream.requests_to("/broken").len() == 1, "a response is not retried");
    Ok(())
}

/// Runs `inferer` against the fake provider in `format`; returns the run's
/// output and the request the provider saw, and checks that the key shows
/// nowhere in the run's REST views.
async fn infer(format: &str, key: &str, path: &str) -> Result<(Value, Seen)> {
    let upstream = Upstream::start().await;
    let env = TestEnv::start(Sdk::JsV4).await;
    let base = format!("{}/v1/", upstream.base);
    let event = env.send_event("e2e/infer", json!({"format": format, "base": base})).await?;
    let done = env.wait_run_finished(&event, "inferer").await?;
    ensure!(done.status == RunStatus::Completed, "{done}");
    let seen = upstream.requests_to(path).pop().ok_or_else(|| anyhow!("the provider got no request"))?;
    for view in ["", "/steps", "/timeline", "/jobs"] {
        let text = env.http.get(format!("{}/v1/runs/{}{view}", env.base, done.run_id)).send().await?.text().await?;
        ensure!(!text.contains(key), "the key shows in GET /v1/runs/{{id}}{view}: {text}");
    }
    Ok((done.output, seen))
}

#[tokio::test(flavor = "multi_thread")]
async fn step_ai_infer_speaks_openai_chat() -> Result<()> {
    let key = "sk-e2e-openai-chat-key-0123456789";
    let (output, seen) = infer("openai-chat", key, "/v1/chat/completions").await?;
    ensure!(header(&seen, "authorization").as_deref() == Some(&format!("Bearer {key}")), "{seen:?}");
    let body: Value = serde_json::from_str(&seen.body)?;
    ensure!(body["messages"][0]["content"] == "say hi" && body["model"] == "gpt-test", "{body}");
    ensure!(output["out"]["choices"][0]["message"]["content"] == "hello from the fake openai", "{output}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn step_ai_infer_speaks_anthropic() -> Result<()> {
    let key = "sk-e2e-anthropic-key-0123456789";
    let (output, seen) = infer("anthropic", key, "/v1/messages").await?;
    ensure!(header(&seen, "x-api-key").as_deref() == Some(key), "{seen:?}");
    ensure!(header(&seen, "authorization").is_none(), "no bearer for anthropic: {seen:?}");
    ensure!(header(&seen, "anthropic-version").is_some(), "the SDK's headers arrive: {seen:?}");
    ensure!(output["out"]["content"][0]["text"] == "hello from the fake anthropic", "{output}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_race_finishes_before_the_slow_sibling() -> Result<()> {
    let env = TestEnv::start(Sdk::JsV4).await;
    let event = env.send_event("e2e/race", json!({})).await?;
    let done = env.wait_run_finished(&event, "racer").await?;
    ensure!(done.status == RunStatus::Completed, "{done}");
    ensure!(done.output == json!({"winner": "fast", "after": "fast"}), "{done}");
    // The function went on while "slow" was still running: its step after
    // the race ran before "slow" finished.
    let after = env.wait_log_entry("racer after-race", |e| e.func == "racer" && e.step.as_deref() == Some("after-race")).await?;
    let slow = env.wait_log_entry("racer slow", |e| e.func == "racer" && e.step.as_deref() == Some("slow")).await?;
    let (a, s) = (after.t.unwrap_or(i64::MAX), slow.t.unwrap_or(0));
    ensure!(a < s, "after-race ran at {a}, after slow finished at {s}");
    Ok(())
}
