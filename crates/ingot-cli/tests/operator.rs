//! Operator safety, against the real `ingot` binary: one engine per database
//! (a second one refuses to start and names the holder), and SIGTERM drains
//! and exits 0 like Ctrl-C, releasing the database for the next start.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Starting the binary and answering `/health` may take this long on a loaded machine.
const STARTUP: Duration = Duration::from_secs(60);
/// A stopping engine must be gone within this long.
const EXIT: Duration = Duration::from_secs(15);

/// An `ingot dev` process on `db`, killed if the test ends while it runs.
struct Engine {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Engine {
    fn spawn(db: &Path, log: PathBuf) -> Result<Engine> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let out = File::create(&log)?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ingot"));
        for (k, _) in std::env::vars() {
            if k.starts_with("INNGEST_") || k.starts_with("INGOT_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(["dev", "--host", "127.0.0.1", "--no-discovery", "--no-poll", "--port"])
            .arg(port.to_string())
            .arg("--db")
            .arg(db)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd.spawn().context("spawning ingot")?;
        Ok(Engine { child, log, base: format!("http://127.0.0.1:{port}") })
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client) -> Result<()> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("ingot exited with {status} before answering; log:\n{}", self.log_text());
            }
            if let Ok(r) = http.get(format!("{}/health", self.base)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("ingot never answered /health; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) for the process to exit on its own.
    async fn wait_exit(&mut self, within: Duration) -> Result<(ExitStatus, Duration)> {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status, t0.elapsed()));
            }
            if t0.elapsed() > within {
                bail!("ingot still running {within:?} later; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn sigterm(&self) -> Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().context("running kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.child.id());
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send_event(http: &reqwest::Client, base: &str, name: &str) -> Result<String> {
    let r = http.post(format!("{base}/e/dev")).json(&serde_json::json!({"name": name, "data": {}})).send().await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("POST /e answered {status}: {body}");
    }
    body["ids"][0].as_str().map(str::to_string).context("no event id")
}

#[tokio::test]
async fn a_second_engine_on_the_same_database_is_refused_and_sigterm_drains_and_releases_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("ingot.db");
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;

    let mut first = Engine::spawn(&db, dir.path().join("first.log"))?;
    first.wait_healthy(&http).await?;
    let event = send_event(&http, &first.base, "operator/before-restart").await?;

    // A second engine on the same file refuses to start and says who has it.
    let mut second = Engine::spawn(&db, dir.path().join("second.log"))?;
    let (status, _) = second.wait_exit(STARTUP).await?;
    let log = second.log_text();
    assert!(!status.success(), "the second engine must not start: {log}");
    let expected = format!("database {} is in use by another Ingot engine (pid {} on host ", db.display(), first.child.id());
    assert!(log.contains(&expected), "the refusal names the holder; log:\n{log}");
    assert!(log.contains("command `") && log.contains(" dev "), "and its command; log:\n{log}");
    // The first one is unaffected.
    assert!(http.get(format!("{}/health", first.base)).send().await?.status().is_success());

    // SIGTERM: drains and exits 0, promptly.
    first.sigterm()?;
    let (status, took) = first.wait_exit(EXIT).await?;
    assert!(status.success(), "SIGTERM exits 0, got {status}; log:\n{}", first.log_text());
    assert!(first.log_text().contains("SIGTERM: shutting down"), "log:\n{}", first.log_text());
    eprintln!("engine exited {took:?} after SIGTERM");

    // The lock went with it: the next engine starts on the same database and has its data.
    let mut third = Engine::spawn(&db, dir.path().join("third.log"))?;
    third.wait_healthy(&http).await?;
    let r = http.get(format!("{}/v1/events/{event}", third.base)).send().await?;
    assert!(r.status().is_success(), "the event accepted before the restart is there: {}", r.status());
    third.sigterm()?;
    let (status, _) = third.wait_exit(EXIT).await?;
    assert!(status.success(), "log:\n{}", third.log_text());
    Ok(())
}
