//! `xrootd.macaroon_secret`: when an XRootD config issues macaroons (`macaroons.secretkey`),
//! the agent should fingerprint that same file (`[report] macaroon_secret`), so that
//! `pool status` can tell a node whose macaroons the others refuse; and the secret must be
//! readable by its owner only: whoever reads it can mint macaroons for the whole pool.

use super::Finding;
use crate::site::xrootd_conf::load;
use lvs_shared::config::NodeConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const ID: &str = "xrootd.macaroon_secret";

pub fn findings(cfg: &NodeConfig, files: &[PathBuf]) -> Vec<Finding> {
    let mut out = Vec::new();
    for file in files {
        let Ok(dirs) = load(file) else { continue };
        let Some(d) = dirs.iter().find(|d| d.name == "macaroons.secretkey") else {
            continue;
        };
        let Some(secret) = d.args.first().map(PathBuf::from) else {
            continue;
        };
        out.push(judge(cfg, &secret, &d.source));
    }
    out
}

fn judge(cfg: &NodeConfig, secret: &Path, source: &str) -> Finding {
    let line = format!("macaroon_secret = \"{}\"", secret.display());
    if let Ok(m) = std::fs::metadata(secret) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Finding::error(
                ID,
                format!(
                    "the macaroon secret {} is readable by others ({mode:o})",
                    secret.display()
                ),
                format!(
                    "{source} issues macaroons with it: whoever reads it can mint macaroons that \
                     every node of the pool accepts"
                ),
                format!(
                    "chmod 0600 {} (owned by the user xrootd runs as)",
                    secret.display()
                ),
            );
        }
    }
    match &cfg.daemon.report.macaroon_secret {
        Some(p) if p == secret => Finding::ok(
            ID,
            format!("/status carries the fingerprint of {}", secret.display()),
            format!("the secret of {source}"),
        ),
        Some(p) => Finding::warn(
            ID,
            format!(
                "[report] macaroon_secret is {}, but XRootD signs with {}",
                p.display(),
                secret.display()
            ),
            format!(
                "{source}: pool status compares the fingerprint of the file the agent reads, \
                 not of the one XRootD uses"
            ),
            format!("in [report] of {}, set:\n{line}", cfg.file.display()),
        ),
        None => Finding::warn(
            ID,
            "XRootD issues macaroons, but /status carries no fingerprint of their secret",
            format!(
                "{source}. A macaroon from one node verifies on another only with the same \
                 secret; without the fingerprint pool status cannot tell a node that differs"
            ),
            format!("in [report] of {}, set:\n{line}", cfg.file.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::doctor::Severity;

    #[test]
    fn unset_other_path_open_mode_and_ok() {
        let d = std::env::temp_dir().join(format!("macdoc-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let secret = d.join("secret");
        std::fs::write(&secret, "c2VjcmV0\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let x = d.join("x.cfg");
        std::fs::write(&x, format!("macaroons.secretkey {}\n", secret.display())).unwrap();
        let cfg = |extra: &str| {
            let p = d.join("node.toml");
            std::fs::write(
                &p,
                format!("interface = \"lo\"\n[[vip]]\naddress = \"192.0.2.100\"\nports = [1094]\n[report]\n{extra}"),
            )
            .unwrap();
            NodeConfig::load(&p).unwrap()
        };
        let f = findings(&cfg(""), std::slice::from_ref(&x));
        assert_eq!(f[0].severity, Severity::Warn, "{f:?}");
        assert!(f[0]
            .fix
            .as_ref()
            .unwrap()
            .contains(&format!("macaroon_secret = \"{}\"", secret.display())));
        let f = findings(
            &cfg("macaroon_secret = \"/etc/other\"\n"),
            std::slice::from_ref(&x),
        );
        assert_eq!(f[0].severity, Severity::Warn, "{f:?}");
        let good = cfg(&format!("macaroon_secret = \"{}\"\n", secret.display()));
        assert_eq!(
            findings(&good, std::slice::from_ref(&x))[0].severity,
            Severity::Ok
        );
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let f = findings(&good, std::slice::from_ref(&x));
        assert_eq!(f[0].severity, Severity::Error, "{f:?}");
        // No macaroons configured: no finding.
        std::fs::write(&x, "all.export /data\n").unwrap();
        assert!(findings(&good, &[x]).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
