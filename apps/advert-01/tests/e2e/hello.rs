//! `test/hello.world` end to end, sent through the client and through the
//! app's own HTTP API.

use advert_01::jobs::client::HelloWorld;
use advert_01::jobs::hello;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_world_greets_in_steps() {
    let app = TestApp::start(&[]).await;
    let event_id = app.send::<HelloWorld>(HelloWorld { name: Some("Ada".to_string()) }).await;
    let run = app.wait_run(&event_id, hello::ID).await.unwrap();
    assert_eq!(run.status, "Completed", "{run:?}");
    assert_eq!(run.output["message"], "Hello, Ada!");
    assert!(run.output["greeted_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{run:?}");
    let steps = serde_json::to_string(&app.steps(&run.run_id).await.unwrap()).unwrap();
    for step in ["compose-greeting", "pause", "stamp"] {
        assert!(steps.contains(step), "step {step} not in {steps}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_api_sends_typed_events() {
    let app = TestApp::start(&[]).await;
    let http = reqwest::Client::new();
    let r = http.post(format!("{}/api/events/test/hello.world", app.app())).json(&json!({"name": "Grace"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let event_id = body["ids"][0].as_str().unwrap().to_string();
    let run = app.wait_run(&event_id, hello::ID).await.unwrap();
    assert_eq!(run.output["message"], "Hello, Grace!", "{run:?}");

    // A payload of the wrong shape never reaches the engine.
    let r = http.post(format!("{}/api/events/email/send", app.app())).json(&json!({"name": "Grace"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let err: serde_json::Value = r.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("does not fit email/send"), "{err}");
    let r = http.post(format!("{}/api/events/nope/nothing", app.app())).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}
