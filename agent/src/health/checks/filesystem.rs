//! `filesystem`: the path is a mount point (the seeds require a shared file system: an
//! unmounted one leaves an empty directory that still "works"), is writable, and has free
//! space above the threshold.
//!
//! The write probe runs as root in a directory other users may write to, so it creates a
//! fresh random name with `O_CREAT|O_EXCL|O_NOFOLLOW` (a planted symlink is never followed,
//! an existing file never overwritten) and `O_NONBLOCK` (a planted FIFO never blocks). The
//! probe runs on a detached thread: a hung mount fails the check by the runner's timeout and
//! never delays the agent's exit.

use super::{Check, CheckResult};
use lvs_shared::config::check::MinFree;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Filesystem {
    pub path: PathBuf,
    pub min_free: MinFree,
    pub writable: bool,
    /// Set while a probe thread runs: a hung mount must not pile up one blocked thread per
    /// interval.
    pub busy: Arc<AtomicBool>,
}

impl Check for Filesystem {
    async fn run(&self) -> CheckResult {
        let path = self.path.clone();
        let (min_free, writable) = (self.min_free, self.writable);
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(format!(
                "{} hangs (previous probe still blocked)",
                path.display()
            ));
        }
        let busy = self.busy.clone();
        // Blocking syscalls; a hung NFS mount stalls only this thread, and the runner's
        // timeout still reports the check as failed.
        crate::util::blocking::off_runtime(move || {
            let r = probe(&path, min_free, writable);
            busy.store(false, Ordering::Release);
            r
        })
        .await?
    }
}

fn probe(path: &Path, min_free: MinFree, writable: bool) -> CheckResult {
    if !is_mount_point(path)? {
        return Err(format!("{} is not a mount point", path.display()));
    }
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| format!("statvfs: {e}"))?;
    let frag = st.fragment_size() as u64;
    let total = st.blocks() as u64 * frag;
    let avail = st.blocks_available() as u64 * frag;
    let pct = if total == 0 {
        0.0
    } else {
        avail as f64 * 100.0 / total as f64
    };
    let enough = match min_free {
        MinFree::Percent(p) => pct >= p,
        MinFree::Bytes(b) => avail >= b,
    };
    if !enough {
        return Err(format!("only {} MiB ({pct:.1}%) free", avail >> 20));
    }
    if writable {
        write_probe(path).map_err(|e| format!("not writable: {e}"))?;
    }
    Ok(format!("{} MiB ({pct:.1}%) free", avail >> 20))
}

/// A name nobody can predict, so nothing can be planted at it in advance.
fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!(".lvs-node-check-{:016x}", h.finish())
}

/// Creates, writes and removes a fresh file below `dir` without following a symlink.
fn write_probe(dir: &Path) -> Result<(), String> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let d = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| e.to_string())?;
    let name = random_name();
    let fd = nix::fcntl::openat(
        &d,
        name.as_str(),
        OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| e.to_string())?;
    let w = nix::unistd::write(&fd, b"lvs-node").map_err(|e| e.to_string());
    drop(fd);
    let _ = nix::unistd::unlinkat(&d, name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    w.map(|_| ())
}

/// A mount point per the kernel's own mount table (catches bind mounts, which a device
/// number comparison with the parent would miss).
fn is_mount_point(path: &Path) -> Result<bool, String> {
    let canon = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read the mount table: {e}"))?;
    let want = canon.to_string_lossy();
    Ok(table
        .lines()
        .any(|l| l.split(' ').nth(4).map(unescape).is_some_and(|m| m == want)))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_a_mount_point_and_tmp_subdir_is_not() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        let d = std::env::temp_dir().join(format!("lvs-fs-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let e = probe(&d, MinFree::Percent(0.0), true).unwrap_err();
        assert!(e.contains("not a mount point"), "{e}");
        let _ = std::fs::remove_dir(&d);
        assert!(probe(Path::new("/"), MinFree::Percent(0.0), false).is_ok());
        assert!(probe(Path::new("/"), MinFree::Percent(100.0), false).is_err());
    }

    #[test]
    fn write_probe_never_follows_or_blocks() {
        let d = std::env::temp_dir().join(format!("lvs-fs-w-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let target = d.join("target");
        std::fs::write(&target, "keep").unwrap();
        // Symlinks and a FIFO at the name the probe used to write (pid-based).
        let old = d.join(format!(".lvs-node-check-{}", std::process::id()));
        std::os::unix::fs::symlink(&target, &old).unwrap();
        write_probe(&d).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        std::fs::remove_file(&old).unwrap();
        nix::unistd::mkfifo(&old, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        write_probe(&d).unwrap();
        // Two names in a row differ, and nothing is left behind.
        assert_ne!(random_name(), random_name());
        let mut left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 2, "{left:?}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
