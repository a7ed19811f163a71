//! Runs the conformance suite against every backend.

use ingot_store::{conformance, MemStore, SqliteStore, Store};

#[tokio::test]
async fn mem_store_conforms() {
    conformance::run_all(&MemStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("ingot.db")).await.unwrap();
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn sqlite_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingot.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        conformance::run_all(&store).await;
    }
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert!(!reopened.functions(true).await.unwrap().is_empty());
}
