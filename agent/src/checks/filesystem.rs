//! `filesystem`: the path is a mount point (the seeds require a shared file system: an
//! unmounted one leaves an empty directory that still "works"), is writable, and has free
//! space above the threshold.

use super::{Check, CheckResult};
use lvs_shared::config::daemon::MinFree;
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
        // Blocking syscalls; a hung NFS mount stalls only this worker thread, and the
        // runner's timeout still reports the check as failed.
        tokio::task::spawn_blocking(move || {
            let r = probe(&path, min_free, writable);
            busy.store(false, Ordering::Release);
            r
        })
        .await
        .map_err(|e| e.to_string())?
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
        let probe = path.join(format!(".lvs-node-check-{}", std::process::id()));
        std::fs::write(&probe, b"lvs-node").map_err(|e| format!("not writable: {e}"))?;
        let _ = std::fs::remove_file(&probe);
    }
    Ok(format!("{} MiB ({pct:.1}%) free", avail >> 20))
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
}
