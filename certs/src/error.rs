//! Exit codes: 0 ok, 1 failure, 2 bad input or usage (nothing written). A [`Usage`] error
//! anywhere in the chain makes the process exit 2.

use std::fmt;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAIL: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Bad input: names the flag or file and the fix. Raised before anything is written.
#[derive(Debug)]
pub struct Usage {
    pub what: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n  fix: {}", self.what, self.problem, self.fix)
    }
}

impl std::error::Error for Usage {}

pub fn usage(
    what: impl Into<String>,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> anyhow::Error {
    anyhow::Error::new(Usage {
        what: what.into(),
        problem: problem.into(),
        fix: fix.into(),
    })
}

/// Maps an error to the exit code: 2 when any cause is a [`Usage`] error.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.downcast_ref::<Usage>().is_some()) {
        EXIT_USAGE
    } else {
        EXIT_FAIL
    }
}

/// The fix for a directory this process cannot write. A read-only file system under
/// systemd is most likely the renew unit's ProtectSystem=strict: name the drop-in.
pub fn writable_fix(e: &std::io::Error, dir: &std::path::Path, otherwise: &str) -> String {
    // The kind too: errors from `sharedfs` name the file and keep the kind, not the errno.
    if e.raw_os_error() == Some(nix::libc::EROFS)
        || e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
    {
        format!(
            "{} is read-only for this process. Under systemd (lvs-cert-renew.service has \
             ProtectSystem=strict) allow it with `systemctl edit lvs-cert-renew.service`:\n    \
             [Service]\n    ReadWritePaths={} <the shared directory>\n  otherwise remount it read-write",
            dir.display(),
            dir.display()
        )
    } else {
        otherwise.to_string()
    }
}
