//! The axum endpoint through `tower::ServiceExt::oneshot` (no socket):
//! the three methods, mounting under another path, and unknown methods.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{dev_client, FakeEngine};
use ingot::{Ctx, Function, Handler};
use serde_json::{json, Value};
use tower::ServiceExt;

fn hello() -> Function {
    Function::new("hello")
        .trigger_event_name("app/hello")
        .handler(|ctx: Ctx| async move {
            let name = ctx.event.data["name"].as_str().unwrap_or("world").to_string();
            let greeting: String = ctx.step.run("greet", || async move { Ok(format!("Hello {name}")) }).await?;
            Ok(json!({"message": greeting}))
        })
        .into()
}

async fn send(router: axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = router.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn call(path: &str, body: Value) -> Request<Body> {
    Request::post(path).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn get_put_and_post_through_axum() {
    let engine = FakeEngine::start(|_| (200, json!({"ok": true, "modified": true}))).await;
    let client = dev_client("app", &engine.base);
    let router = ingot::serve(&client, [hello()]);

    let (status, headers, body) = send(router.clone(), Request::get("/api/inngest").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["function_count"], 1);
    assert_eq!(body["mode"], "dev");
    assert!(headers["x-inngest-sdk"].to_str().unwrap().starts_with("inngest-rs:v"));

    let put = Request::put("/api/inngest")
        .header("host", "127.0.0.1:3000")
        .header("x-inngest-server-kind", "dev")
        .body(Body::from(r#"{"url":"http://127.0.0.1:3000/api/inngest"}"#))
        .unwrap();
    let (status, headers, body) = send(router.clone(), put).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"message": "Successfully registered", "modified": true})));
    assert_eq!(headers["x-inngest-sync-kind"], "out_of_band");
    let register = &engine.requests()[0];
    assert_eq!(
        register.body["functions"][0]["steps"]["step"]["runtime"]["url"],
        "http://127.0.0.1:3000/api/inngest?fnId=app-hello&stepId=step"
    );

    let event = json!({"name": "app/hello", "data": {"name": "Ada"}});
    let body = json!({"event": event, "events": [event], "steps": {}, "ctx": {"run_id": "r1", "attempt": 0}});
    let (status, headers, ops) = send(router.clone(), call("/api/inngest?fnId=app-hello&stepId=step", body)).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["x-inngest-req-version"], "2");
    assert_eq!((ops[0]["op"].clone(), ops[0]["data"].clone()), (json!("StepRun"), json!("Hello Ada")));

    let (status, _, _) = send(router, Request::delete("/api/inngest").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn mounted_under_another_path_the_sync_url_follows() {
    let engine = FakeEngine::start(|_| (200, json!({"ok": true, "modified": false}))).await;
    let client = dev_client("app", &engine.base);
    let inner = axum::Router::new().route("/jobs", Handler::new(&client, [hello()]).method_router());
    let router = axum::Router::new().nest("/internal", inner);
    let put = Request::put("/internal/jobs?region=eu").header("host", "app.local:8080").body(Body::from("{}")).unwrap();
    let (status, _, body) = send(router, put).await;
    assert_eq!((status, body["modified"].clone()), (StatusCode::OK, json!(false)));
    let register = &engine.requests()[0];
    assert_eq!(register.body["url"], "http://app.local:8080/internal/jobs?region=eu");
    assert_eq!(
        register.body["functions"][0]["steps"]["step"]["runtime"]["url"],
        "http://app.local:8080/internal/jobs?region=eu&fnId=app-hello&stepId=step"
    );
}
