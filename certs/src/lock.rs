//! One issuer at a time across the pool: a lock file in the shared directory, created with
//! O_EXCL, kept fresh by a heartbeat, and taken over when its heartbeat is older than the
//! stale timeout (the holder died). Modelled on certmagic's file storage locks.
//!
//! Why it holds on NFS with clocks that disagree:
//! - Age is measured on the file server's clock: the lock's mtime (the server stamps it at
//!   every heartbeat write) against the mtime of a file the waiter itself writes there
//!   just before. The holder's own clock only shows in the record, for people.
//! - A stale lock is removed only under a second O_EXCL file, the breaker, and only if the
//!   file at the lock path is still the one judged stale (same inode, not written since).
//!   Of several waiters that judged it stale, the first removes it and creates its own;
//!   the others then find a different inode and leave it alone. A release takes the
//!   breaker too, so a removal never unlinks a lock created in the meantime.
//! - The heartbeat writes through the descriptor the lock was created with, so a holder
//!   that lost its lock only writes its own, unlinked inode; and [`Lock::ensure_held`] lets
//!   the holder check that the file at the lock path is still its inode before it
//!   publishes anything.
//!
//! The shared directory is written by every node's root, so the files here go through
//! [`crate::sharedfs`]: the lock and the breaker are created `O_EXCL|O_NOFOLLOW`, the file
//! a waiter writes to read the server's clock gets a fresh random name every time, and the
//! lock is examined and read without following a symlink or blocking on a FIFO, with its
//! record bounded in size. Anything but a regular file at the lock path is an error naming
//! it (a waiter must not take over, nor wait behind, a file no holder made).

use crate::sharedfs::{self, Dir};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub const LOCK_FILE: &str = "lvs-cert.lock";
const BREAKER: &str = "lvs-cert.lock.breaker";
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
    dir: PathBuf,
    path: PathBuf,
    stale: Duration,
    file: Arc<File>,
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

/// Bound on what is read at the lock path (the record is [`RECORD`] bytes).
const MAX_LOCK: u64 = 4096;

fn read_record(path: &Path) -> Option<Record> {
    let s = sharedfs::read_text(path, MAX_LOCK).ok()?;
    serde_json::from_str(s.trim()).ok()
}

/// What a waiter saw at the lock path: which file, and when the server last wrote it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Seen {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
}

fn seen(m: &std::fs::Metadata) -> Seen {
    Seen {
        dev: m.dev(),
        ino: m.ino(),
        mtime: (m.mtime(), m.mtime_nsec()),
    }
}

/// Opening the file (not just stat) makes an NFS client revalidate its attributes
/// (close-to-open consistency), so the mtime is the server's current one. The open never
/// follows a symlink nor blocks on a FIFO, and only a regular file is a lock.
fn examine(path: &Path) -> std::io::Result<Seen> {
    Ok(seen(&sharedfs::open_regular(path, MAX_LOCK)?.1))
}

/// The file server's "now": the mtime of a file we create in the shared directory, under
/// a fresh random name each time (a name seen once is never opened again).
fn server_now(dir: &Path) -> Result<SystemTime> {
    let d = Dir::open(dir)?;
    let (name, mut f) = d
        .create_unique(".lvs-cert-clock-", 0o600)
        .context("creating a file to read the file server's clock")?;
    let res = (|| {
        f.write_all(b"t")?;
        f.sync_all()?;
        f.metadata()?.modified()
    })();
    let _ = d.remove(&name);
    res.with_context(|| {
        format!(
            "writing {} to read the file server's clock",
            dir.join(&name).display()
        )
    })
}

/// Runs `f` holding the breaker: a second O_EXCL file that only lock removals take, so
/// that judging a lock stale and unlinking it happen with no other removal in between.
/// It is held for microseconds; one left by a process that died in that window is itself
/// removed once it is older than `stale`. None: another node holds it right now.
fn with_breaker<T>(dir: &Path, stale: Duration, f: impl FnOnce() -> T) -> Result<Option<T>> {
    let b = dir.join(BREAKER);
    match Dir::open(dir).and_then(|d| d.create_named(BREAKER, 0o644)) {
        Ok(_) => {
            let r = f();
            let _ = std::fs::remove_file(&b);
            Ok(Some(r))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(s) = examine(&b) {
                if age(dir, s)? > stale {
                    tracing::warn!("removing the stale lock breaker {}", b.display());
                    let _ = std::fs::remove_file(&b);
                }
            }
            Ok(None)
        }
        Err(e) => Err(e).context("creating the lock breaker"),
    }
}

/// How long ago the file server last wrote the file seen as `s`.
fn age(dir: &Path, s: Seen) -> Result<Duration> {
    let server = server_now(dir)?;
    let written = SystemTime::UNIX_EPOCH + Duration::new(s.mtime.0.max(0) as u64, s.mtime.1 as u32);
    Ok(server.duration_since(written).unwrap_or_default())
}

/// Removes the lock at `path` if it is still the very file `judged` (same inode, not
/// written since). True when this call removed it.
fn remove_if_same(dir: &Path, path: &Path, judged: Seen, stale: Duration) -> Result<bool> {
    let r = with_breaker(dir, stale, || {
        if examine(path).ok() == Some(judged) {
            std::fs::remove_file(path).is_ok()
        } else {
            false
        }
    })?;
    Ok(r.unwrap_or(false))
}

/// Waits until the lock is ours. `stale` is how old the lock file may get (by the file
/// server's clock) before its holder counts as dead; `wait` is how long we queue behind a
/// live holder.
pub async fn acquire(dir: &Path, stale: Duration, wait: Duration) -> Result<Lock> {
    let probe = std::fs::create_dir_all(dir)
        .and_then(|_| Dir::open(dir))
        .and_then(|d| {
            let (name, _) = d.create_unique(".lvs-cert-probe-", 0o600)?;
            d.remove(&name)
        });
    if let Err(e) = probe {
        return Err(crate::error::usage(
            format!("shared directory {}", dir.display()),
            format!("cannot write: {e}"),
            crate::error::writable_fix(
                &e,
                dir,
                "make it writable by root on this node, or pass the right --shared-dir",
            ),
        ));
    }
    let path = dir.join(LOCK_FILE);
    let token = unique();
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        match Dir::open(dir).and_then(|d| d.create_named(LOCK_FILE, 0o644)) {
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
                let hb = f.clone();
                let every = (stale / 3).max(Duration::from_millis(500));
                let heartbeat = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        rec.updated = now();
                        let _ = hb.write_at(&encode(&rec), 0);
                        let _ = hb.sync_data();
                    }
                });
                return Ok(Lock {
                    dir: dir.to_path_buf(),
                    path,
                    stale,
                    file: f,
                    heartbeat,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let judged = match examine(&path) {
                    Ok(s) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(e).context(
                            "examining the pool lock (another writer of the shared directory \
                             put something there that no lvs-cert made)",
                        )
                    }
                };
                let age = age(dir, judged)?;
                if age > stale {
                    let who = read_record(&path)
                        .map(|r| format!("{} pid {}", r.host, r.pid))
                        .unwrap_or_else(|| "unknown".into());
                    if remove_if_same(dir, &path, judged, stale)? {
                        tracing::warn!(
                            "took over the stale lock {} of {who} (not written for {}s by the file server's clock)",
                            path.display(),
                            age.as_secs()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
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
                        "gave up waiting for {} after {}s; if its holder died the lock turns stale after {}s without a heartbeat (--lock-stale)",
                        path.display(),
                        wait.as_secs(),
                        stale.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e).context("creating the pool lock"),
        }
    }
}

/// Unique within this process too (the tests race threads of one process).
fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        now_nanos(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl Lock {
    fn mine(&self) -> Option<Seen> {
        self.file.metadata().ok().map(|m| seen(&m))
    }

    /// Fails unless the file at the lock path is still the one this holder created (a
    /// waiter may have judged it stale, e.g. after this process was stopped for longer
    /// than --lock-stale). Called before anything is published.
    pub fn ensure_held(&self) -> Result<()> {
        let mine = self.mine();
        let now = sharedfs::open_regular(&self.path, MAX_LOCK)
            .map(|(_, m)| m)
            .ok();
        let held = match (mine, now) {
            (Some(a), Some(b)) => a.dev == b.dev() && a.ino == b.ino(),
            _ => false,
        };
        if !held {
            let who = read_record(&self.path)
                .map(|r| format!("{} (pid {})", r.host, r.pid))
                .unwrap_or_else(|| "nobody".into());
            bail!(
                "lost the pool lock {}: it was taken over as stale and is now held by {who}; nothing was published (raise --lock-stale if this node stalls that long)",
                self.path.display()
            );
        }
        Ok(())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.heartbeat.abort();
        // Remove it only if it is still ours (under the breaker, so no lock another node
        // created meanwhile is unlinked). Should the breaker stay busy, the lock is left
        // to turn stale.
        let Some(mine) = self.mine() else { return };
        for _ in 0..100 {
            match with_breaker(&self.dir, self.stale, || {
                if examine(&self.path).is_ok_and(|s| s.dev == mine.dev && s.ino == mine.ino) {
                    let _ = std::fs::remove_file(&self.path);
                }
            }) {
                Ok(Some(())) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn plant(dir: &Path, updated: i64, mtime_age: Duration) {
        let rec = Record {
            host: "elsewhere".into(),
            pid: 1,
            token: "x".into(),
            created: updated,
            updated,
        };
        let p = dir.join(LOCK_FILE);
        std::fs::write(&p, encode(&rec)).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::now() - mtime_age)
            .unwrap();
    }

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
        // A dead holder: its file was last written long ago.
        plant(d.path(), now() - 100, Duration::from_secs(100));
        let b = acquire(d.path(), Duration::from_secs(10), Duration::from_secs(1))
            .await
            .unwrap();
        drop(b);
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "debris left"
        );
    }

    /// Staleness is judged by the file server's clock (the lock file's mtime), never by
    /// the time the holder wrote into it: a holder whose clock is behind is alive, one
    /// whose clock is ahead and who stopped writing is dead.
    #[tokio::test]
    async fn the_holders_clock_does_not_decide_staleness() {
        let d = tempfile::tempdir().unwrap();
        plant(d.path(), now() - 1000, Duration::ZERO);
        let e = acquire(
            d.path(),
            Duration::from_secs(10),
            Duration::from_millis(600),
        )
        .await;
        assert!(e.is_err(), "a live lock (fresh mtime) was taken over");
        plant(d.path(), now() + 1000, Duration::from_secs(100));
        let l = acquire(d.path(), Duration::from_secs(10), Duration::from_secs(2)).await;
        assert!(l.is_ok(), "a dead lock (old mtime) was not taken over");
    }

    /// Many waiters find the same stale lock at once: exactly one may hold it at a time.
    #[test]
    fn waiters_racing_for_a_stale_lock_never_hold_it_together() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let mut max_seen = 0;
        for _round in 0..12 {
            plant(&dir, now() - 100, Duration::from_secs(100));
            let holders = Arc::new(AtomicUsize::new(0));
            let max = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(std::sync::Barrier::new(6));
            let threads: Vec<_> = (0..6)
                .map(|_| {
                    let (dir, holders, max, start) =
                        (dir.clone(), holders.clone(), max.clone(), start.clone());
                    std::thread::spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap();
                        start.wait();
                        rt.block_on(async {
                            let l = acquire(&dir, Duration::from_secs(10), Duration::from_secs(20))
                                .await
                                .unwrap();
                            let n = holders.fetch_add(1, Ordering::SeqCst) + 1;
                            max.fetch_max(n, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(l);
                        })
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            max_seen = max_seen.max(max.load(Ordering::SeqCst));
        }
        assert_eq!(max_seen, 1, "two waiters held the lock at the same time");
    }

    /// A holder whose lock was taken over notices before publishing, and its release
    /// leaves the new holder's lock in place.
    #[tokio::test]
    async fn a_holder_that_lost_its_lock_knows_it_and_leaves_the_new_one() {
        let d = tempfile::tempdir().unwrap();
        let l = acquire(d.path(), Duration::from_secs(30), Duration::from_secs(1))
            .await
            .unwrap();
        l.ensure_held().unwrap();
        // Another waiter judged it stale and took over.
        let p = d.path().join(LOCK_FILE);
        std::fs::remove_file(&p).unwrap();
        plant(d.path(), now(), Duration::ZERO);
        let e = l.ensure_held().unwrap_err().to_string();
        assert!(
            e.contains("lost the pool lock") && e.contains("elsewhere"),
            "{e}"
        );
        drop(l);
        assert_eq!(read_record(&p).unwrap().host, "elsewhere");
    }
}
