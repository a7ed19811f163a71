//! The lock that keeps a second engine off a SQLite database: `<db>.lock`
//! beside the file, held with an OS advisory lock (`flock` on Linux) for as
//! long as the store is open, and holding who took it (pid, host, start time,
//! command) so the engine that is refused can say who has the database.
//!
//! SQLite itself would let two engines share the file, but leases and
//! concurrency counts live in each process's memory, so two engines would
//! claim the same queue items. The OS drops the lock when the process dies,
//! however it dies, so a lock file left behind by a killed engine is simply
//! taken over by the next one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::{Result, StoreError};

/// Held while the store is open; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DbLock {
    _file: File,
}

/// `<db>.lock`, next to the database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "ingot.db".into());
    name.push(".lock");
    db.with_file_name(name)
}

/// Takes the lock of `db`, or says who holds it.
pub(crate) fn acquire(db: &Path) -> Result<DbLock> {
    let path = lock_path(db);
    let cannot = |e: std::io::Error| StoreError::Unavailable(format!("cannot lock {}: {e}", path.display()));
    // Not truncated on open: while someone else holds it, its contents name them.
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(cannot)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StoreError::Locked { db: db.display().to_string(), holder: describe(&text) });
        }
        // Some network file systems have no advisory locks: run unguarded rather than not at all.
        Err(TryLockError::Error(e)) if e.kind() == ErrorKind::Unsupported => {
            tracing::warn!(path = %path.display(), "this file system has no file locks: nothing stops a second engine on this database");
            return Ok(DbLock { _file: file });
        }
        Err(TryLockError::Error(e)) => return Err(cannot(e)),
    }
    let holder = json!({
        "pid": std::process::id(),
        "host": hostname(),
        "started_at_ms": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
        "command": command_line(std::env::args()),
    });
    file.set_len(0).map_err(cannot)?;
    file.seek(SeekFrom::Start(0)).map_err(cannot)?;
    file.write_all(format!("{holder}\n").as_bytes()).map_err(cannot)?;
    Ok(DbLock { _file: file })
}

/// The holder as a phrase: `pid 1234 on host x, started …, command \`ingot dev\``.
fn describe(text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text.trim()) else {
        return "its lock file does not say who: it is being taken right now, or was written by something else".into();
    };
    let pid = v["pid"].as_u64().map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    let host = v["host"].as_str().unwrap_or("?");
    let started = v["started_at_ms"].as_i64().map(utc).unwrap_or_else(|| "?".into());
    let command = v["command"].as_str().unwrap_or("?");
    format!("pid {pid} on host {host}, started {started}, command `{command}`")
}

/// This machine's name (Linux), else `$HOSTNAME`, else `unknown`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The command line, with the values of flags that look secret replaced: the
/// lock file is readable by anyone who can read the directory.
fn command_line(args: impl Iterator<Item = String>) -> String {
    let secret = |flag: &str| {
        let f = flag.to_ascii_lowercase();
        f.starts_with('-') && ["key", "secret", "token", "password", "uri", "url"].iter().any(|w| f.contains(w))
    };
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            out.push("***".to_string());
            hide_next = false;
        } else if let Some((flag, _)) = arg.split_once('=').filter(|(f, _)| secret(f)) {
            out.push(format!("{flag}=***"));
        } else {
            hide_next = secret(&arg);
            out.push(arg);
        }
    }
    out.join(" ")
}

/// `ms` since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (the civil-from-days
/// conversion of Howard Hinnant's date algorithms; the store has no date crate).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_printed_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_776_681_296_789), "2026-04-20 10:34:56 UTC");
    }

    #[test]
    fn secret_flag_values_are_not_written() {
        let args = ["ingot", "start", "--signing-key", "signkey-prod-ab", "--event-key=k1", "--port", "8288"];
        assert_eq!(command_line(args.iter().map(|s| s.to_string())), "ingot start --signing-key *** --event-key=*** --port 8288");
    }

    #[test]
    fn the_holder_is_described_from_its_lock_file() {
        let text = r#"{"pid":42,"host":"box","started_at_ms":0,"command":"ingot dev"}"#;
        assert_eq!(describe(text), "pid 42 on host box, started 1970-01-01 00:00:00 UTC, command `ingot dev`");
        assert!(describe("").contains("does not say who"));
    }

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(lock_path(Path::new(".ingot/ingot.db")), Path::new(".ingot/ingot.db.lock"));
    }
}
