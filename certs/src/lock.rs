//! One issuer at a time across the pool: a lock file in the shared directory, created with
//! O_EXCL, kept fresh by a heartbeat, and taken over when its heartbeat is older than the
//! stale timeout (the holder died). Modelled on certmagic's file storage locks.
//!
//! The heartbeat rewrites the file through the descriptor we created it with, so a holder
//! whose lock was (wrongly) taken over only ever writes its own, unlinked inode.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const LOCK_FILE: &str = "lvs-cert.lock";
/// Fixed record size: a torn read during a heartbeat can only show padding, never a mix.
const RECORD: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    host: String,
    pid: u32,
    token: String,
    created: i64,
    updated: i64,
}

pub struct Lock {
    path: PathBuf,
    token: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

fn now() -> i64 {
    crate::verify::now()
}

fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "?".into())
}

fn encode(r: &Record) -> Vec<u8> {
    let mut b = serde_json::to_vec(r).unwrap_or_default();
    b.truncate(RECORD - 1);
    b.resize(RECORD - 1, b' ');
    b.push(b'\n');
    b
}

fn read_record(path: &Path) -> Option<Record> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    serde_json::from_str(s.trim()).ok()
}

/// Age of the lock's last heartbeat; falls back to mtime for unreadable records.
fn age(path: &Path) -> Option<i64> {
    if let Some(r) = read_record(path) {
        return Some(now() - r.updated);
    }
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(m.elapsed().map(|d| d.as_secs() as i64).unwrap_or(0))
}

/// Waits until the lock is ours. `stale` is how old a heartbeat may get before the holder
/// counts as dead; `wait` is how long we queue behind a live holder.
pub async fn acquire(dir: &Path, stale: Duration, wait: Duration) -> Result<Lock> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the shared directory {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let token = format!("{:x}{:x}", std::process::id(), now_nanos());
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => {
                let t = now();
                let mut rec = Record {
                    host: host(),
                    pid: std::process::id(),
                    token: token.clone(),
                    created: t,
                    updated: t,
                };
                let mut f = f;
                f.write_all(&encode(&rec))?;
                f.sync_all()?;
                let f = Arc::new(f);
                let every = (stale / 3).max(Duration::from_millis(500));
                let heartbeat = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        rec.updated = now();
                        let _ = f.write_at(&encode(&rec), 0);
                        let _ = f.sync_data();
                    }
                });
                return Ok(Lock {
                    path,
                    token,
                    heartbeat,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Some(a) = age(&path) {
                    if a > stale.as_secs() as i64 {
                        let who = read_record(&path)
                            .map(|r| format!("{} pid {}", r.host, r.pid))
                            .unwrap_or_else(|| "unknown".into());
                        tracing::warn!(
                            "taking over the stale lock {} of {who} (no heartbeat for {a}s)",
                            path.display()
                        );
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                }
                if !said {
                    let who = read_record(&path)
                        .map(|r| format!("{} (pid {})", r.host, r.pid))
                        .unwrap_or_else(|| "another node".into());
                    eprintln!("waiting for {who}, which holds {}", path.display());
                    said = true;
                }
                if Instant::now() > deadline {
                    bail!(
                        "gave up waiting for {} after {}s; if its holder died the lock turns stale after {}s of no heartbeat (--lock-stale)",
                        path.display(),
                        wait.as_secs(),
                        stale.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("creating the lock {}", path.display()))
            }
        }
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.heartbeat.abort();
        // Remove it only if it is still ours (it may have been taken over as stale).
        if read_record(&self.path).is_some_and(|r| r.token == self.token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exclusive_then_released_and_stale_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let a = acquire(d.path(), Duration::from_secs(30), Duration::from_secs(1))
            .await
            .unwrap();
        let e = acquire(
            d.path(),
            Duration::from_secs(30),
            Duration::from_millis(300),
        )
        .await;
        assert!(e.is_err());
        drop(a);
        assert!(!d.path().join(LOCK_FILE).exists());
        // A dead holder: a record whose heartbeat is old.
        let rec = Record {
            host: "dead".into(),
            pid: 1,
            token: "x".into(),
            created: now() - 100,
            updated: now() - 100,
        };
        std::fs::write(d.path().join(LOCK_FILE), encode(&rec)).unwrap();
        let b = acquire(d.path(), Duration::from_secs(10), Duration::from_secs(1))
            .await
            .unwrap();
        drop(b);
    }
}
