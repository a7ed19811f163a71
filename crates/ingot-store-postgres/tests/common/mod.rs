//! A fresh PostgreSQL database per test, dropped afterwards (also when the
//! test fails). The server is `INGOT_TEST_POSTGRES` (a URI of a database
//! the user may `CREATE DATABASE` from), by default this machine's
//! `postgres://postgres@127.0.0.1:5432/test`.

#![allow(dead_code)]

use std::future::Future;

use tokio_postgres::NoTls;

pub fn admin_uri() -> String {
    std::env::var("INGOT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `uri` with its database name replaced.
fn with_database(uri: &str, db: &str) -> String {
    let (base, query) = match uri.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (uri, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub async fn admin() -> tokio_postgres::Client {
    let uri = admin_uri();
    let (client, conn) = tokio_postgres::connect(&uri, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {uri} (set INGOT_TEST_POSTGRES) is needed for these tests: {e}"));
    tokio::spawn(conn);
    client
}

/// A client on the test database `uri`, for raw SQL.
pub async fn raw(uri: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(uri, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Runs `test` with the URI of a new, empty database, and drops the
/// database afterwards whether the test passed or panicked.
pub async fn with_fresh_db<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = format!("ingot_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = admin().await;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let outcome = tokio::spawn(test(with_database(&admin_uri(), &name))).await;
    // FORCE: connections a failed test left open do not keep it.
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// How many migrations the crate ships (files in `migrations/postgres`).
#[allow(dead_code)]
pub fn migration_count() -> usize {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    std::fs::read_dir(dir)
        .map(|d| d.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))).count())
        .unwrap_or(0)
}
