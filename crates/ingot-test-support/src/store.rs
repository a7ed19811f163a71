//! Which store the engines under test use: SQLite by default, PostgreSQL
//! with `INGOT_TEST_STORE=postgres` (a fresh database per engine directory
//! on `INGOT_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`,
//! dropped when the test's engine goes away).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Whether the engines under test run on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("INGOT_TEST_STORE").is_ok_and(|s| s.eq_ignore_ascii_case("postgres"))
}

/// The server databases are created on.
pub fn admin_uri() -> String {
    std::env::var("INGOT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The databases made for engine directories, by directory.
static DATABASES: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

/// The flags that put an engine whose files live in `dir` on the test store:
/// `--db dir/ingot.db`, or `--postgres-uri` of the database made for `dir`
/// (made on first use, so a restarted engine finds its data).
pub fn engine_store_args(dir: &Path) -> Vec<String> {
    if !on_postgres() {
        return vec!["--db".into(), dir.join("ingot.db").display().to_string()];
    }
    vec!["--postgres-uri".into(), database_for(dir)]
}

/// The URI of the database made for `dir`, made now if needed.
pub fn database_for(dir: &Path) -> String {
    let mut dbs = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
    let name = match dbs.iter().find(|(d, _)| d == dir) {
        Some((_, name)) => name.clone(),
        None => {
            let name = format!("ingot_e2e_{}", ulid::Ulid::new().to_string().to_lowercase());
            admin(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
            dbs.push((dir.to_path_buf(), name.clone()));
            name
        }
    };
    with_database(&admin_uri(), &name)
}

/// Drops the database made for `dir`, if any.
pub fn drop_database_for(dir: &Path) {
    let name = {
        let mut dbs = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = dbs.iter().position(|(d, _)| d == dir) else { return };
        dbs.remove(i).1
    };
    if let Err(e) = admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
        eprintln!("could not drop test database {name}: {e}");
    }
}

/// `uri` with its database path replaced by `name`.
fn with_database(uri: &str, name: &str) -> String {
    match uri.rsplit_once('/') {
        Some((base, _)) if base.contains("://") && base.len() > base.find("://").unwrap_or(0) + 3 => format!("{base}/{name}"),
        _ => format!("{uri} dbname={name}"),
    }
}

/// Runs one statement on the admin database, on its own thread and runtime
/// (callers may be inside or outside a runtime, or dropping).
fn admin(sql: &str) -> Result<(), String> {
    let sql = sql.to_string();
    let uri = admin_uri();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&uri, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
            let conn = tokio::spawn(conn);
            let out = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = conn.await;
            out
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_string())?
}
