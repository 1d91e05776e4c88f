//! The TLS files a config names (`[report] tls_cert`, `tls_key`, `client_ca`; `[pool] ca`,
//! `cert`, `key`), checked when the config is read: a missing file, a private key that
//! others can read, or a file without the PEM block it should hold stops the command with
//! the key and the fix, before anything listens or connects. Whether a key belongs to its
//! certificate needs a crypto provider, so `lvs-node` checks that when it builds the TLS
//! configuration, in the same words.
//!
//! A file this (non-root) user may not read is not an error here: the readers of the config
//! that are not the daemon (`nagios` under NRPE, `director-config` for this node, `status`)
//! never use the keys, and the daemon, as root, reads and checks every file at its start.
//! The mode of a key is checked by anyone (it needs no read permission).

use crate::error::ConfigError;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A PEM file of the config is never larger than this (a CA bundle of a few hundred
/// certificates is well under it).
const MAX_PEM: u64 = 4 << 20;

/// A certificate and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn err(file: &Path, key: &str, problem: String, fix: impl Into<String>) -> ConfigError {
    ConfigError::new(file, key, problem, fix)
}

/// `s` as an absolute path.
pub fn abs(file: &Path, key: &str, s: &str) -> Result<PathBuf, ConfigError> {
    let p = PathBuf::from(s);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(err(
            file,
            key,
            format!("`{s}` is not an absolute path"),
            "use the absolute path of the PEM file, e.g. /etc/grid-security/hostcert.pem",
        ))
    }
}

/// The file's text, or None when this non-root user may not read it.
fn read(file: &Path, key: &str, p: &Path, what: &str) -> Result<Option<String>, ConfigError> {
    let f = match std::fs::File::open(p) {
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && !nix::unistd::geteuid().is_root() =>
        {
            return Ok(None)
        }
        r => r,
    };
    let f = f.map_err(|e| {
        let fix = if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!("run as root (or a user who can read {what})")
        } else {
            format!("point {key} at {what}")
        };
        err(file, key, format!("cannot read {}: {e}", p.display()), fix)
    })?;
    let meta = f.metadata().map_err(|e| {
        err(
            file,
            key,
            format!("{}: {e}", p.display()),
            format!("point {key} at {what}"),
        )
    })?;
    if !meta.is_file() {
        return Err(err(
            file,
            key,
            format!("{} is not a regular file", p.display()),
            format!("point {key} at {what}"),
        ));
    }
    let mut s = String::new();
    f.take(MAX_PEM)
        .read_to_string(&mut s)
        .map_err(|e| err(file, key, format!("{}: {e}", p.display()), "use a PEM file"))?;
    Ok(Some(s))
}

/// A PEM file holding at least one certificate.
pub fn cert_file(file: &Path, key: &str, p: &Path) -> Result<(), ConfigError> {
    let what = "a PEM certificate file";
    let Some(s) = read(file, key, p, what)? else {
        return Ok(());
    };
    if !s.contains("-----BEGIN CERTIFICATE-----") {
        return Err(err(
            file,
            key,
            format!("{} holds no PEM certificate", p.display()),
            format!("point {key} at {what} (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(())
}

/// A PEM private key that only its owner can read (mode 0600 or 0400).
pub fn key_file(file: &Path, key: &str, p: &Path) -> Result<(), ConfigError> {
    if let Ok(m) = std::fs::metadata(p) {
        let mode = m.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(err(
                file,
                key,
                format!(
                    "{} has mode {mode:04o}: group or others can read the private key",
                    p.display()
                ),
                format!(
                    "chmod 600 {} (a private key must be 0600 or 0400)",
                    p.display()
                ),
            ));
        }
    }
    let Some(s) = read(file, key, p, "the PEM private key")? else {
        return Ok(());
    };
    if !(s.contains("-----BEGIN ") && s.contains("PRIVATE KEY-----")) {
        return Err(err(
            file,
            key,
            format!("{} holds no PEM private key", p.display()),
            format!("point {key} at the unencrypted PEM private key of the certificate"),
        ));
    }
    Ok(())
}

/// A CA bundle (PEM file) or a directory of CA certificates such as
/// /etc/grid-security/certificates (its `*.pem` and `HASH.N` files).
pub fn ca_path(file: &Path, key: &str, p: &Path) -> Result<(), ConfigError> {
    if p.is_dir() {
        if crate::http::ca_dir_files(p).is_empty() {
            return Err(err(
                file,
                key,
                format!(
                    "{} holds no CA certificate (*.pem or HASH.0 files)",
                    p.display()
                ),
                "point it at a PEM bundle of the CA(s), or at /etc/grid-security/certificates",
            ));
        }
        return Ok(());
    }
    cert_file(file, key, p)
}

/// The pair `(cert, key)` of two optional keys `ck`/`kk`: both or neither.
pub fn pair(
    file: &Path,
    (ck, cert): (&str, Option<String>),
    (kk, key): (&str, Option<String>),
) -> Result<Option<Pair>, ConfigError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => {
            let cert = abs(file, ck, &c)?;
            let key = abs(file, kk, &k)?;
            cert_file(file, ck, &cert)?;
            key_file(file, kk, &key)?;
            Ok(Some(Pair { cert, key }))
        }
        (Some(_), None) => Err(err(
            file,
            kk,
            format!("{ck} is set but {kk} is missing"),
            format!("set both {ck} and {kk} (the certificate and its private key), or neither"),
        )),
        (None, Some(_)) => Err(err(
            file,
            ck,
            format!("{kk} is set but {ck} is missing"),
            format!("set both {ck} and {kk}, or neither"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

    #[test]
    fn key_mode_missing_files_and_halves_are_named() {
        let d = tempfile::tempdir().unwrap();
        let f = Path::new("/etc/lvs-node/node.toml");
        let c = d.path().join("c.pem");
        let k = d.path().join("k.pem");
        std::fs::write(&c, CERT).unwrap();
        std::fs::write(&k, KEY).unwrap();
        let cs = c.display().to_string();
        let ks = k.display().to_string();
        let both = |c: Option<&str>, k: Option<&str>| {
            pair(
                f,
                ("report.tls_cert", c.map(String::from)),
                ("report.tls_key", k.map(String::from)),
            )
        };
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = both(Some(&cs), Some(&ks)).unwrap_err();
        assert_eq!(e.key, "report.tls_key");
        assert!(
            e.problem.contains("0644") && e.fix.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(both(Some(&cs), Some(&ks)).unwrap().is_some());
        let e = both(Some("/nonexistent/c.pem"), Some(&ks)).unwrap_err();
        assert_eq!(e.key, "report.tls_cert");
        assert!(e.problem.contains("/nonexistent/c.pem"), "{e}");
        assert_eq!(both(Some(&cs), None).unwrap_err().key, "report.tls_key");
        assert_eq!(
            both(Some("c.pem"), Some(&ks)).unwrap_err().key,
            "report.tls_cert"
        );
        // A certificate given as the key.
        let e = both(Some(&cs), Some(&cs)).unwrap_err();
        assert_eq!(e.key, "report.tls_key");
        assert!(both(None, None).unwrap().is_none());
        // A CA directory needs at least one CA file.
        assert_eq!(
            ca_path(f, "pool.ca", d.path().join("none").as_path())
                .unwrap_err()
                .key,
            "pool.ca"
        );
        let e = ca_path(f, "pool.ca", &d.path().join("sub")).unwrap_err();
        assert_eq!(e.key, "pool.ca");
        std::fs::create_dir(d.path().join("ca")).unwrap();
        assert!(ca_path(f, "pool.ca", &d.path().join("ca")).is_err());
        std::fs::write(d.path().join("ca").join("1a2b3c4d.0"), CERT).unwrap();
        assert!(ca_path(f, "pool.ca", &d.path().join("ca")).is_ok());
    }
}
