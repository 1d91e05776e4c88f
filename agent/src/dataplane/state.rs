//! The owned-state record in state_dir (`state.json`, 0600) and the lock that serializes
//! `up`, `down` and the daemon's repairs on one host.

use super::model::Owned;
use super::ApplyError;
use nix::fcntl::{Flock, FlockArg};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const FILE: &str = "state.json";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

pub fn load(dir: &Path) -> Result<Owned, ApplyError> {
    let p = path(dir);
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            ApplyError(format!(
                "{}: unreadable state ({e}); it records what lvs-node changed: fix or remove it by hand after checking `ip addr` and the ARP rules",
                p.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Owned::default()),
        Err(e) => Err(ApplyError(format!("read {}: {e}", p.display()))),
    }
}

pub fn save(dir: &Path, owned: &Owned) -> Result<(), ApplyError> {
    ensure_dir(dir)?;
    let p = path(dir);
    if owned.is_empty() {
        // Nothing of ours is left on the host: leave no record behind either.
        return match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ApplyError(format!("remove {}: {e}", p.display()))),
        };
    }
    let mut o = owned.clone();
    o.version = 1;
    let data = serde_json::to_vec_pretty(&o).expect("state serializes");
    lvs_shared::atomic::write(&p, &data, 0o600)
        .map_err(|e| ApplyError(format!("write {}: {e}", p.display())))
}

fn ensure_dir(dir: &Path) -> Result<(), ApplyError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ApplyError(format!("create state_dir {}: {e}", dir.display())))
}

/// An exclusive lock on state_dir/lock, held for one plan's apply.
pub struct Lock {
    _f: Flock<fs::File>,
}

/// How long a run waits for another one (the daemon's repair, an admin's `up`).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Takes the lock without blocking the async runtime: the holder may be a task of this
/// very process (the daemon's repair loop), which must keep running to release it.
pub async fn lock(dir: &Path) -> Result<Lock, ApplyError> {
    ensure_dir(dir)?;
    let p = dir.join("lock");
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| ApplyError(format!("open {}: {e}", p.display())))?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(f) => return Ok(Lock { _f: f }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err((_, e)) => {
                return Err(ApplyError(format!(
                    "lock {}: {e}; another lvs-node run holds it (wait and retry)",
                    p.display()
                )))
            }
        }
    }
}
