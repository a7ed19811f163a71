//! `export/pdf` end to end: a stored strategy rendered to a real PDF in the
//! local export folder and parsed back; a note stored in S3-compatible
//! storage (a fake S3 on loopback that checks requests are signed); a
//! missing strategy failing at once; names and ids that try to leave the
//! export folder refused, with no file written anywhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use advert_01::jobs::client::{DocumentRef, ExportPdf, GenerateStrategy};
use advert_01::jobs::{export_pdf, strategy};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::put;
use axum::Router;

use crate::support::TestApp;

/// Every text of a PDF's pages, as lopdf extracts it.
fn pdf_text(bytes: &[u8]) -> String {
    let doc = lopdf::Document::load_mem(bytes).expect("a PDF lopdf can read");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).expect("text in the PDF")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategy_becomes_a_pdf_in_the_export_folder() {
    let app = TestApp::start(&[]).await;
    let event_id = app.send::<GenerateStrategy>(crate::strategy::brief()).await;
    let run = app.wait_run(&event_id, strategy::ID).await.unwrap();
    let id = run.output["strategy_id"].as_str().unwrap().to_string();

    let event_id = app.send::<ExportPdf>(ExportPdf { document: DocumentRef::Strategy { id: id.clone() }, file_name: None }).await;
    let run = app.wait_run(&event_id, export_pdf::ID).await.unwrap();
    assert_eq!(run.status, "Completed", "{run:?}");
    let location = run.output["location"].as_str().unwrap();
    let path = location.strip_prefix("file://").expect("a file:// location");
    assert!(path.starts_with(&std::fs::canonicalize(app.dir.path()).unwrap().display().to_string()), "{path}");
    assert!(path.ends_with(&format!("strategy-{id}.pdf")), "{path}");
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(run.output["size_bytes"], bytes.len() as u64);
    assert!(bytes.starts_with(b"%PDF-"));

    let text = pdf_text(&bytes);
    for needle in ["Media strategy: Spring launch", "Budget by channel", "search", "EUR 6,075.95", "Launch: 2026-04-01", "KPIs", "cpl"] {
        assert!(text.contains(needle), "{needle:?} not in the PDF text:\n{text}");
    }

    // The app can serve it, and the function announced it.
    let key = run.output["key"].as_str().unwrap();
    let served = reqwest::get(format!("{}/api/exports/{key}", app.app())).await.unwrap().bytes().await.unwrap();
    assert_eq!(served.as_ref(), bytes.as_slice());
    let ready = app.wait_event("export/pdf.ready", |d| d["location"] == location).await.unwrap();
    assert_eq!(ready["data"]["size_bytes"], bytes.len() as u64);
    assert_eq!(ready["data"]["document"], serde_json::json!({"kind": "strategy", "id": id}));
    app.stop().await;
}

/// What the fake S3 received.
#[derive(Default)]
struct Bucket {
    objects: HashMap<String, Vec<u8>>,
    authorizations: Vec<String>,
}

type Shared = Arc<Mutex<Bucket>>;

async fn put_object(
    State(b): State<Shared>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    let mut b = b.lock().unwrap();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    b.authorizations.push(auth);
    b.objects.insert(format!("{bucket}/{key}"), body.to_vec());
    let mut h = HeaderMap::new();
    h.insert("etag", "\"0123456789abcdef\"".parse().unwrap());
    (StatusCode::OK, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_goes_to_s3_compatible_storage() {
    let bucket: Shared = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new().route("/{bucket}/{*key}", put(put_object)).with_state(bucket.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let app = TestApp::start(&[
        ("EXPORT_S3_BUCKET", "exports".to_string()),
        ("EXPORT_S3_ENDPOINT", endpoint),
        ("EXPORT_S3_ALLOW_HTTP", "true".to_string()),
        ("EXPORT_S3_ACCESS_KEY_ID", "test-key".to_string()),
        ("EXPORT_S3_SECRET_ACCESS_KEY", "test-secret".to_string()),
        ("EXPORT_PREFIX", "advert-01/pdf".to_string()),
    ])
    .await;
    let note = DocumentRef::Note {
        title: "Quarterly note".to_string(),
        body: "Budgets move to search in May.\n\nReview on 2026-06-01.".to_string(),
    };
    let event_id = app.send::<ExportPdf>(ExportPdf { document: note, file_name: Some("q2 note".to_string()) }).await;
    let run = app.wait_run(&event_id, export_pdf::ID).await.unwrap();
    assert_eq!(run.status, "Completed", "{run:?}");
    assert_eq!(run.output["location"], "s3://exports/advert-01/pdf/q2-note.pdf", "{run:?}");

    let (pdf, authorizations) = {
        let b = bucket.lock().unwrap();
        (b.objects.get("exports/advert-01/pdf/q2-note.pdf").cloned(), b.authorizations.clone())
    };
    let pdf = pdf.expect("the PDF was PUT to the bucket");
    assert_eq!(run.output["size_bytes"], pdf.len() as u64);
    assert!(authorizations.iter().all(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=test-key/")), "{authorizations:?}");
    let text = pdf_text(&pdf);
    assert!(text.contains("Quarterly note") && text.contains("Budgets move to search in May."), "{text}");
    app.stop().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_strategy_fails_at_once() {
    let app = TestApp::start(&[]).await;
    let doc = DocumentRef::Strategy { id: "01NOSUCHSTRATEGY000000000".to_string() };
    let event_id = app.send::<ExportPdf>(ExportPdf { document: doc, file_name: None }).await;
    let run = app.wait_run(&event_id, export_pdf::ID).await.unwrap();
    assert_eq!(run.status, "Failed", "{run:?}");
    assert!(run.output.to_string().contains("not found"), "{run:?}");
    app.stop().await;
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_ids_that_leave_the_export_folder_are_refused() {
    // The data folder sits two levels below a folder of its own, so a
    // traversal that escaped would land where this test can look.
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("a").join("b");
    let app = TestApp::start(&[("ADVERT_DATA_DIR", data.display().to_string())]).await;
    let note = || DocumentRef::Note { title: "Escape".to_string(), body: "Out of the folder.".to_string() };
    let names = [
        "../../../escaped",
        "..\\..\\escaped",
        "/tmp/escaped-absolute",
        "%2e%2e%2fescaped",
        "..%2fescaped",
        "exports/../../escaped",
        "escaped\0.pdf",
    ];

    // The app API refuses them outright.
    for name in names {
        let body = serde_json::json!({"document": {"kind": "note", "title": "Escape", "body": "x"}, "file_name": name});
        let r = app.http.post(format!("{}/api/events/export/pdf", app.app())).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{name:?}");
        let answer: serde_json::Value = r.json().await.unwrap();
        assert!(answer["error"].as_str().unwrap_or_default().contains("is refused"), "{name:?}: {answer}");
    }
    let r = app
        .http
        .post(format!("{}/api/events/export/pdf", app.app()))
        .json(&serde_json::json!({"document": {"kind": "strategy", "id": "../../../../etc/passwd"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Sent straight to the engine, the function refuses them at once.
    for name in names {
        let event_id = app.send::<ExportPdf>(ExportPdf { document: note(), file_name: Some(name.to_string()) }).await;
        let run = app.wait_run(&event_id, export_pdf::ID).await.unwrap();
        assert_eq!(run.status, "Failed", "{name:?}: {run:?}");
        assert!(run.output.to_string().contains("is refused"), "{name:?}: {run:?}");
    }
    for id in ["../../../escaped", "..%2fescaped", "a/b", "..\\x", ""] {
        let event_id = app.send::<ExportPdf>(ExportPdf { document: DocumentRef::Strategy { id: id.to_string() }, file_name: None }).await;
        let run = app.wait_run(&event_id, export_pdf::ID).await.unwrap();
        assert_eq!(run.status, "Failed", "{id:?}: {run:?}");
        assert!(run.output.to_string().contains("is not a valid strategy id"), "{id:?}: {run:?}");
    }

    // Nothing was written: not in the export folder, not beside it, not above it.
    let written: Vec<_> = files_under(outer.path()).into_iter().filter(|p| p.extension().is_some_and(|e| e == "pdf")).collect();
    assert_eq!(written, Vec::<std::path::PathBuf>::new());
    assert!(!std::path::Path::new("/tmp/escaped-absolute.pdf").exists());

    // A harmless name is still cleaned up and stored inside the folder.
    let event_id = app.send::<ExportPdf>(ExportPdf { document: note(), file_name: Some("Q2 plan: final?".to_string()) }).await;
    let run = app.wait_run(&event_id, export_pdf::ID).await.unwrap();
    assert_eq!(run.status, "Completed", "{run:?}");
    let stored = std::path::PathBuf::from(run.output["location"].as_str().unwrap().strip_prefix("file://").unwrap());
    assert_eq!(stored, std::fs::canonicalize(data.join("exports")).unwrap().join("Q2-plan--final.pdf"));
    app.stop().await;
}
