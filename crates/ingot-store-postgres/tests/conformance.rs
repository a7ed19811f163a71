//! The shared conformance suite of `ingot-store`, against PostgreSQL.

mod common;

use ingot_store::{conformance, Store};
use ingot_store_postgres::{PgOptions, PgStore};

#[tokio::test]
async fn postgres_store_conforms() {
    common::with_fresh_db(|uri| async move {
        let store = PgStore::connect(&uri, PgOptions::default()).await.unwrap();
        conformance::run_all(&*store).await;
    })
    .await;
}

/// A second store on a database the first migrated and filled finds its
/// data and migrates nothing again.
#[tokio::test]
async fn postgres_store_survives_reconnect() {
    common::with_fresh_db(|uri| async move {
        {
            let store = PgStore::connect(&uri, PgOptions::default()).await.unwrap();
            conformance::run_all(&*store).await;
        }
        let again = PgStore::connect(&uri, PgOptions::default()).await.unwrap();
        assert!(!again.functions(true).await.unwrap().is_empty(), "data survives a reconnect");
        let raw = common::raw(&uri).await;
        let n: i64 = raw.query_one("SELECT count(*) FROM ingot_migrations", &[]).await.unwrap().get(0);
        assert_eq!(n, common::migration_count() as i64, "each migration applied once");
    })
    .await;
}
