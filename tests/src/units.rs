//! Checks for the shipped systemd units and packages: `systemd-analyze verify` in a
//! throwaway root, the security exposure score, and small helpers the packaging tests share.
//! A missing tool (systemd-analyze, dpkg-deb, rpm) is a failure, never a skip: .ci/run
//! installs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (tests/ is one level down).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The units the packages install, as file names under systemd/.
pub const UNITS: [&str; 3] = [
    "lvs-node.service",
    "lvs-cert-renew.service",
    "lvs-cert-renew.timer",
];

/// Runs a program; a missing program panics with what to install.
pub fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {prog}: {e} (install it: .ci/run lists the Debian packages)")
    })
}

/// Panics with the command's output unless it succeeded; returns stdout.
pub fn run_ok(prog: &str, args: &[&str]) -> String {
    let out = run(prog, args);
    assert!(
        out.status.success(),
        "`{prog} {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The host's unit directory: the targets our units pull in (sysinit.target,
/// network-online.target, timers.target...) are copied from it into the throwaway root.
fn host_unit_dir() -> PathBuf {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("sysinit.target").exists())
        .expect("no systemd unit directory with sysinit.target on this host (install systemd)")
}

/// Makes `root` verifiable: the host's units next to ours, and a stub /usr/bin/kill for
/// ExecReload= (with /bin -> usr/bin, as on Debian 12 and EL8/9). Units already in the
/// root win, and a host's own lvs-* units are never copied (a developer machine may have
/// the package installed). Only files and symlinks are copied: verify needs no .wants/.
/// ExecStart= binaries must already be in the root: the caller puts them there.
pub fn prepare_root(root: &Path) {
    let units = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    for entry in std::fs::read_dir(host_unit_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let dest = units.join(&name);
        let kind = entry.file_type().unwrap();
        if name.to_string_lossy().starts_with("lvs-") || dest.symlink_metadata().is_ok() {
            continue;
        }
        if kind.is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(target, &dest).unwrap();
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
    let bin = root.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    stub(&bin.join("kill"));
    if std::fs::symlink_metadata(root.join("bin")).is_err() {
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    }
}

/// An executable that does nothing, unless a real file is there already.
pub fn stub(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if !path.exists() {
        std::fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// `systemd-analyze verify` on our units inside `root`. It exits 0 on mere warnings
/// ("Unknown key", bad values are "ignoring"), so any output line naming one of our units
/// is an error too. --man=no: the man pages are checked by the packaging tests (they are
/// not installed on the host running the tests).
pub fn verify(root: &Path) -> Result<(), String> {
    let root_arg = format!("--root={}", root.display());
    let mut args = vec!["verify", "--man=no", &root_arg];
    args.extend(UNITS);
    let out = run("systemd-analyze", &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("lvs-")).collect();
    if !out.status.success() || !ours.is_empty() {
        return Err(format!("systemd-analyze verify ({}):\n{text}", out.status));
    }
    Ok(())
}

/// The "Overall exposure level" of a unit file, read offline (nothing is loaded or run).
pub fn exposure(unit: &Path) -> f64 {
    let out = run_ok(
        "systemd-analyze",
        &[
            "security",
            "--offline=yes",
            "--no-pager",
            unit.to_str().unwrap(),
        ],
    );
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    let value = line.rsplit(':').next().unwrap().split_whitespace().next();
    value
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse exposure from `{line}`"))
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = std::env::temp_dir();
        for n in 0.. {
            let p = base.join(format!("lvs-{tag}-{}-{n}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return TempDir(p);
            }
        }
        unreachable!()
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
