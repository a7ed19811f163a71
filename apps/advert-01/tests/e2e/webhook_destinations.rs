//! Webhooks to addresses that are not public, as an attacker would send
//! them: receivers really listen on 127.0.0.1 and [::1], and each refused
//! delivery is shown to reach none of them. Without `WEBHOOK_ALLOW_PRIVATE`
//! the app API answers 400 for a private URL literal, and a delivery that
//! gets past it (an event sent straight to the engine) fails at once with
//! its attempt recorded; with the setting the same URLs are delivered, which
//! shows the receivers would have seen a request. A host name is resolved
//! once per attempt and the connection goes to the address that was checked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use advert_01::jobs::client::DeliverWebhook;
use advert_01::jobs::webhook::destination::{HostResolver, Lookup, SystemResolver};
use advert_01::jobs::webhook::{self, attempts};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::support::TestApp;

const SECRET: &str = "whsec_dGhlLXJlY2VpdmVyLWFuZC10aGUtYXBwLXNoYXJlLXRoaXM=";

/// A receiver that records every request's path; `/redirect` answers 302
/// to `/target`.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn record(State(seen): State<Arc<Mutex<Vec<String>>>>, uri: Uri) -> Response {
    seen.lock().unwrap().push(uri.path().to_string());
    if uri.path() == "/redirect" {
        return (StatusCode::FOUND, [("location", "/target")]).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

impl Receiver {
    async fn on(ip: &str) -> Receiver {
        let listener = tokio::net::TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<String>>> = Default::default();
        let router = Router::new().fallback(record).with_state(seen.clone());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Receiver { port, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Names answered from a table (one answer per lookup, the last repeated),
/// every other name by the system; counts lookups per name.
#[derive(Default)]
struct Table {
    answers: HashMap<String, Vec<Vec<IpAddr>>>,
    calls: Mutex<HashMap<String, usize>>,
}

impl Table {
    fn with(mut self, name: &str, answers: &[&[&str]]) -> Table {
        let answers = answers.iter().map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect()).collect();
        self.answers.insert(name.to_string(), answers);
        self
    }

    fn calls(&self, name: &str) -> usize {
        self.calls.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

impl HostResolver for Table {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a> {
        Box::pin(async move {
            let nth = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(host.to_string()).or_default();
                *n += 1;
                *n
            };
            match self.answers.get(host) {
                Some(answers) => Ok(answers[(nth - 1).min(answers.len() - 1)].iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
                None => SystemResolver.lookup(host, port).await,
            }
        })
    }
}

async fn deliver(app: &TestApp, url: &str) -> (String, crate::support::Run) {
    let hook = DeliverWebhook { url: url.to_string(), payload: json!({"type": "probe"}), message_id: None };
    let event_id = app.send::<DeliverWebhook>(hook).await;
    let run = app.wait_run(&event_id, webhook::ID).await.unwrap();
    (event_id, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_and_never_contacted() {
    let v4 = Receiver::on("127.0.0.1").await;
    let v6 = Receiver::on("::1").await;
    // A name whose answer mixes a public address with a loopback one.
    let table = Arc::new(Table::default().with("mixed.hooks.test", &[&["93.184.215.14", "127.0.0.1"]]));
    let app = TestApp::start_with(&[("WEBHOOK_SECRET", SECRET.to_string())], table.clone()).await;
    let (p4, p6) = (v4.port, v6.port);

    // Written as literals, the app API refuses them before any event exists.
    let literals = [
        (format!("http://127.0.0.1:{p4}/api-v4"), "127.0.0.1 is a loopback address"),
        (format!("http://10.0.0.1:{p4}/api-private"), "10.0.0.1 is a private address"),
        (format!("http://[::1]:{p6}/api-v6"), "::1 is a loopback address"),
        (format!("http://[::ffff:127.0.0.1]:{p4}/api-mapped"), "is a loopback address"),
        (format!("http://localhost:{p4}/api-localhost"), "it names this machine"),
        // The URL parser reads 0x7f.1 as 127.0.0.1.
        (format!("http://0x7f.1:{p4}/api-hex"), "127.0.0.1 is a loopback address"),
    ];
    for (url, why) in &literals {
        let r = app
            .http
            .post(format!("{}/api/events/webhook/deliver", app.app()))
            .json(&json!({"url": url, "payload": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{url}");
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(why) && error.contains("WEBHOOK_ALLOW_PRIVATE=true"), "{url}: {body}");
    }
    let events: Value =
        app.http.get(format!("{}/v1/events?name=webhook/deliver", app.engine())).send().await.unwrap().json().await.unwrap();
    assert_eq!(events["data"].as_array().map(Vec::len), Some(0), "a refused URL reached the engine: {events}");

    // Sent straight to the engine, each delivery is refused when it runs,
    // after the name (if any) is resolved.
    let deliveries = [
        (format!("http://127.0.0.1:{p4}/v4"), "127.0.0.1 is a loopback address"),
        (format!("http://10.0.0.1:{p4}/private"), "10.0.0.1 is a private address"),
        (format!("http://[::1]:{p6}/v6"), "::1 is a loopback address"),
        (format!("http://[::ffff:127.0.0.1]:{p4}/mapped"), "::ffff:127.0.0.1 is a loopback address"),
        // `localhost` goes through the system resolver (127.0.0.1 or ::1).
        (format!("http://localhost:{p4}/localhost"), "is a loopback address"),
        (format!("http://mixed.hooks.test:{p4}/mixed"), "mixed.hooks.test: 127.0.0.1 is a loopback address"),
    ];
    for (url, why) in &deliveries {
        let (event_id, run) = deliver(&app, url).await;
        assert_eq!(run.status, "Failed", "{url}: {run:?}");
        assert!(run.output.to_string().contains(why), "{url}: {run:?}");
        // Refused at once: one attempt, recorded, without a status.
        let rows = attempts::for_message(&app.running.deps.db, &event_id).await.unwrap();
        assert_eq!(rows.len(), 1, "{url}: {rows:?}");
        assert_eq!((rows[0].outcome, rows[0].status_code), (attempts::Outcome::Rejected, None), "{url}");
        assert!(rows[0].error.as_deref().unwrap_or_default().contains(why), "{url}: {rows:?}");
    }
    assert_eq!(table.calls("mixed.hooks.test"), 1, "one lookup for one attempt");
    assert_eq!(v4.seen(), Vec::<String>::new(), "a refused delivery reached 127.0.0.1");
    assert_eq!(v6.seen(), Vec::<String>::new(), "a refused delivery reached [::1]");
    app.stop().await;
    v4.task.abort();
    v6.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allow_private_the_same_destinations_are_delivered() {
    let v4 = Receiver::on("127.0.0.1").await;
    let v6 = Receiver::on("::1").await;
    let app = TestApp::start(&[("WEBHOOK_SECRET", SECRET.to_string()), ("WEBHOOK_ALLOW_PRIVATE", "true".to_string())]).await;
    let (p4, p6) = (v4.port, v6.port);
    let r = app
        .http
        .post(format!("{}/api/events/webhook/deliver", app.app()))
        .json(&json!({"url": format!("http://127.0.0.1:{p4}/api-v4"), "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    for url in [
        format!("http://127.0.0.1:{p4}/v4"),
        format!("http://[::1]:{p6}/v6"),
        format!("http://[::ffff:127.0.0.1]:{p4}/mapped"),
        format!("http://localhost:{p4}/localhost"),
    ] {
        let (_, run) = deliver(&app, &url).await;
        assert_eq!(run.status, "Completed", "{url}: {run:?}");
    }
    // A redirect is not followed, even where private addresses are allowed.
    let (_, run) = deliver(&app, &format!("http://127.0.0.1:{p4}/redirect")).await;
    assert_eq!(run.status, "Failed", "{run:?}");
    assert!(run.output.to_string().contains("HTTP 302"), "{run:?}");

    // The event sent through the API runs beside the others.
    let seen = crate::support::eventually("every delivery to 127.0.0.1", || {
        let mut s = v4.seen();
        s.sort();
        (s.len() >= 5).then_some(s)
    })
    .await;
    assert_eq!(seen, ["/api-v4", "/localhost", "/mapped", "/redirect", "/v4"]);
    assert_eq!(v6.seen(), ["/v6"]);
    app.stop().await;
    v4.task.abort();
    v6.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_resolved_once_and_the_connection_goes_where_the_check_looked() {
    let first = Receiver::on("127.0.0.1").await;
    // A second answer for the same name, as a rebinding DNS server would
    // give to a second lookup: nothing may ever be sent there.
    let table = Arc::new(Table::default().with("rebind.hooks.test", &[&["127.0.0.1"], &["127.0.0.2"]]));
    let app =
        TestApp::start_with(&[("WEBHOOK_SECRET", SECRET.to_string()), ("WEBHOOK_ALLOW_PRIVATE", "true".to_string())], table.clone()).await;
    let (_, run) = deliver(&app, &format!("http://rebind.hooks.test:{}/pinned", first.port)).await;
    // The system resolver knows no such name: only the pinned address can
    // have carried the request.
    assert_eq!(run.status, "Completed", "{run:?}");
    assert_eq!(first.seen(), ["/pinned"]);
    assert_eq!(table.calls("rebind.hooks.test"), 1, "the name was looked up again after the check");
    app.stop().await;
    first.task.abort();
}
