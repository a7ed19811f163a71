//! One engine per SQLite database: a second open is refused with who holds
//! it, and dropping the store lets the next one in.

use ingot_store::{SqliteStore, Store, StoreError};

#[tokio::test]
async fn a_second_open_of_the_same_database_is_refused_with_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingot.db");
    let first = SqliteStore::open(&path).await.unwrap();
    let err = match SqliteStore::open(&path).await {
        Ok(_) => panic!("a second store opened a database the first holds"),
        Err(e) => e,
    };
    let StoreError::Locked { db, holder } = &err else { panic!("expected Locked, got {err:?}") };
    assert_eq!(db, &path.display().to_string());
    assert!(holder.contains(&format!("pid {}", std::process::id())), "{holder}");
    assert!(holder.contains("on host ") && holder.contains("started ") && holder.contains("command `"), "{holder}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("database {} is in use by another Ingot engine (pid ", path.display())), "{message}");
    // The refused open changed nothing for the holder.
    assert!(first.apps().await.unwrap().is_empty());
    // Another database beside it is not affected.
    SqliteStore::open(&dir.path().join("other.db")).await.unwrap();
}

#[tokio::test]
async fn dropping_the_store_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingot.db");
    let first = SqliteStore::open(&path).await.unwrap();
    drop(first);
    let second = SqliteStore::open(&path).await.expect("the lock is released on drop");
    assert!(second.apps().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stale_lock_file_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingot.db");
    // What a killed engine leaves: the file, with nobody holding its lock.
    let lock = dir.path().join("ingot.db.lock");
    std::fs::write(&lock, r#"{"pid":999999,"host":"gone","started_at_ms":0,"command":"ingot dev"}"#).unwrap();
    let store = SqliteStore::open(&path).await.expect("a lock file whose lock nobody holds is taken over");
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(text.contains(&format!("\"pid\":{}", std::process::id())), "the new holder is written: {text}");
    drop(store);
}
