//! Reading exports through `GET /api/exports/{key}` stays inside the export
//! prefix, over real HTTP (raw request lines, so no client tidies the path
//! first): traversals, encoded traversals, absolute paths and backslashes
//! read nothing outside the local export folder, and with S3 storage a key
//! outside `EXPORT_PREFIX` is refused before the bucket is asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::TestApp;

/// The sentinel every traversal tries to read.
const SECRET: &str = "top-secret-not-an-export";

/// Sends `GET {target}` as written and returns the status and body.
async fn raw_get(app_url: &str, target: &str) -> (u16, String) {
    let addr = app_url.strip_prefix("http://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Requests that try to leave `exports/` for the file `secret.txt` beside it
/// (or the app's database, or the system's files).
const TRAVERSALS: [&str; 12] = [
    "/api/exports/../secret.txt",
    "/api/exports/..%2fsecret.txt",
    "/api/exports/%2e%2e%2fsecret.txt",
    "/api/exports/%2E%2E/secret.txt",
    "/api/exports/..%5csecret.txt",
    "/api/exports/..\\secret.txt",
    "/api/exports/%2fetc%2fpasswd",
    "/api/exports//etc/passwd",
    "/api/exports/../advert-01.db",
    "/api/exports/%252e%252e%252fsecret.txt",
    "/api/exports/secret.txt%00.pdf",
    "/api/exports/sub/../../secret.txt",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversals_read_nothing_outside_the_export_folder() {
    let app = TestApp::start(&[]).await;
    std::fs::write(app.dir.path().join("secret.txt"), SECRET).unwrap();
    std::fs::create_dir_all(app.dir.path().join("exports/sub")).unwrap();
    std::fs::write(app.dir.path().join("exports/sub/inner.pdf"), SECRET).unwrap();
    std::fs::write(app.dir.path().join("exports/ok.pdf"), "%PDF-ok").unwrap();

    // What the storage wrote can be read.
    let (status, body) = raw_get(app.app(), "/api/exports/ok.pdf").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("%PDF-ok"), "{body}");

    for target in TRAVERSALS.iter().chain(&["/api/exports/sub/inner.pdf"]) {
        let (status, body) = raw_get(app.app(), target).await;
        assert!(matches!(status, 400 | 404), "{target}: {status} {body}");
        assert!(!body.contains(SECRET) && !body.contains("root:") && !body.contains("SQLite format"), "{target} read: {body}");
    }
    app.stop().await;
}

/// A bucket that serves whatever it holds, recording each GET.
#[derive(Default)]
struct Bucket {
    objects: HashMap<String, Vec<u8>>,
    gets: Vec<String>,
}

type Shared = Arc<Mutex<Bucket>>;

async fn get_object(State(b): State<Shared>, Path((bucket, key)): Path<(String, String)>) -> axum::response::Response {
    let mut b = b.lock().unwrap();
    let full = format!("{bucket}/{key}");
    b.gets.push(full.clone());
    match b.objects.get(&full) {
        Some(bytes) => {
            let mut h = HeaderMap::new();
            h.insert("etag", "\"0123456789abcdef\"".parse().unwrap());
            h.insert("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
            (StatusCode::OK, h, bytes.clone()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "<Error><Code>NoSuchKey</Code></Error>").into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_s3_a_key_outside_the_prefix_is_refused_before_the_bucket_is_asked() {
    let bucket: Shared = Default::default();
    {
        let mut b = bucket.lock().unwrap();
        b.objects.insert("exports/advert-01/pdf/ok.pdf".into(), b"%PDF-ok".to_vec());
        b.objects.insert("exports/billing/invoices.csv".into(), SECRET.as_bytes().to_vec());
        b.objects.insert("exports/advert-01/pdf/private/inner.pdf".into(), SECRET.as_bytes().to_vec());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new().route("/{bucket}/{*key}", get(get_object)).with_state(bucket.clone());
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

    let (status, body) = raw_get(app.app(), "/api/exports/advert-01/pdf/ok.pdf").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("%PDF-ok"), "{body}");
    for target in [
        "/api/exports/billing/invoices.csv",
        "/api/exports/advert-01/pdf/../../billing/invoices.csv",
        "/api/exports/advert-01/pdf/..%2f..%2fbilling%2finvoices.csv",
        "/api/exports/advert-01/pdf/private/inner.pdf",
        "/api/exports/advert-01%2fpdf%2f..%2f..%2fbilling/invoices.csv",
        "/api/exports/advert-01/pdfx/../../billing/invoices.csv",
    ] {
        let (status, body) = raw_get(app.app(), target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(!body.contains(SECRET), "{target} read: {body}");
    }
    let gets = bucket.lock().unwrap().gets.clone();
    assert_eq!(gets, ["exports/advert-01/pdf/ok.pdf"], "the bucket was asked for a key outside the prefix");
    app.stop().await;
    server.abort();
}
