//! The shared directory: issued certificates are published here so every node can install
//! them (`lvs-cert install --from DIR`), next to the lock and the renewal record.
//!
//! Layout: `DIR/certs/<label>/<notBefore>-<serial>/{fullchain.pem,privkey.pem}`; a new
//! directory is filled under a temporary name and renamed into place in one step.
//!
//! Other nodes' root writes here too ([`crate::sharedfs`]): `certs/` and `certs/<label>/`
//! are opened without following a symlink (a symlinked one is refused, naming it), the
//! temporary directory is made by this run under a fresh random name, and the files are
//! read without following symlinks, bounded in size.

use crate::sharedfs::{self, Dir};
use crate::verify::{self, CertInfo};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `DIR/renewal.json`: the pool's names, and nothing else (see `cmd::renew`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SharedNames {
    pub vip: String,
    pub alt: Vec<String>,
}

pub const CHAIN: &str = "fullchain.pem";
pub const KEY: &str = "privkey.pem";

/// Publishes a verified certificate and key; returns the new directory.
pub fn publish(
    shared: &Path,
    label: &str,
    chain: &str,
    key: &str,
    leaf: &CertInfo,
) -> Result<PathBuf> {
    std::fs::create_dir_all(shared).with_context(|| format!("creating {}", shared.display()))?;
    let base = Dir::open(shared)
        .and_then(|d| d.sub_create("certs", 0o700))
        .and_then(|d| d.sub_create(label, 0o700))
        .context("refusing to publish")?;
    let (tmp_name, tmp) = base.mkdir_unique(".tmp-", 0o700)?;
    let dst_name = format!("{}-{}", leaf.not_before, leaf.serial.replace(':', ""));
    let res = (|| -> Result<PathBuf> {
        tmp.write_atomic(KEY, key.as_bytes(), 0o600)?;
        tmp.write_atomic(CHAIN, chain.as_bytes(), 0o644)?;
        // rename(2) onto an existing non-empty directory fails, onto a symlink fails
        // (ENOTDIR): nothing is ever published into a directory this run did not make.
        base.rename(&tmp_name, &dst_name)?;
        base.sync()?;
        Ok(base.path().join(&dst_name))
    })();
    if res.is_err() {
        let _ = tmp.remove(KEY);
        let _ = tmp.remove(CHAIN);
        let _ = base.remove_dir(&tmp_name);
    }
    res
}

/// `DIR/certs/<label>` when it and `DIR/certs` are real directories; a symlink planted in
/// their place is not searched (publishing there fails, naming it).
pub fn label_dir(shared: &Path, label: &str) -> Option<PathBuf> {
    let certs = shared.join("certs");
    let dir = certs.join(label);
    for p in [&certs, &dir] {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                tracing::warn!(
                    "{} is not a directory (a symlink?); not searched for certificates",
                    p.display()
                );
                return None;
            }
            Err(_) => return None,
        }
    }
    Some(dir)
}

/// A certificate found under a directory, verified.
pub struct Found {
    pub dir: PathBuf,
    pub published: std::time::SystemTime,
    pub chain: String,
    pub key: String,
    pub leaf: CertInfo,
}

/// How symlinks to files below the searched directory are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Never followed: the pool's shared directory, which lvs-cert itself fills with
    /// plain files.
    Refuse,
    /// Followed when they resolve inside the searched directory: `install --from` an
    /// admin's directory in certbot's layout (`live/NAME/*.pem` -> `../../archive/...`).
    WithinRoot,
}

/// Directories below `root` (up to 3 levels, `root` included) that hold a chain and key.
/// Accepts our layout and certbot's `live/NAME/` layout. Only real directories are
/// entered (the entry's type, not its target's).
fn candidates(root: &Path, links: Links, depth: u32, out: &mut Vec<PathBuf>) {
    let has = |c: &str| {
        let p = root.join(c);
        sharedfs::is_plain_file(&p)
            || (links == Links::WithinRoot
                && std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()))
    };
    if (has(CHAIN) || has("cert.pem")) && has(KEY) {
        out.push(root.to_path_buf());
    }
    if depth == 0 {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue; // half-published temp dirs
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                candidates(&e.path(), links, depth - 1, out);
            }
        }
    }
}

/// The newest (latest notBefore) certificate under `root` that verifies, chains to
/// `trust` and covers `names` with `names[0]` as its CN. Broken or untrusted candidates
/// (e.g. a pair planted by another writer of the share) are skipped with a note.
/// A PEM file of a candidate: no symlink (or, with [`Links::WithinRoot`], one that
/// resolves inside `root`), no FIFO, at most [`sharedfs::MAX_PEM`].
fn read_pem(root: &Path, links: Links, p: &Path) -> std::io::Result<String> {
    let link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    if links == Links::WithinRoot && link {
        let target = std::fs::canonicalize(p)?;
        if !target.starts_with(std::fs::canonicalize(root)?) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: a symbolic link out of {}, refused",
                    p.display(),
                    root.display()
                ),
            ));
        }
        return sharedfs::read_text(&target, sharedfs::MAX_PEM);
    }
    sharedfs::read_text(p, sharedfs::MAX_PEM)
}

pub fn newest_valid(
    root: &Path,
    links: Links,
    names: &[String],
    trust: &verify::Trust,
) -> Option<Found> {
    let mut dirs = Vec::new();
    candidates(root, links, 3, &mut dirs);
    let mut best: Option<Found> = None;
    for d in dirs {
        let chain_p = if std::fs::symlink_metadata(d.join(CHAIN)).is_ok() {
            d.join(CHAIN)
        } else {
            d.join("cert.pem")
        };
        let (chain, key) = match (
            read_pem(root, links, &chain_p),
            read_pem(root, links, &d.join(KEY)),
        ) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(e), _) | (_, Err(e)) => {
                tracing::info!("skipping {}: {e}", d.display());
                continue;
            }
        };
        let checked = verify::check_pair(chain.as_bytes(), &key, names)
            .and_then(|l| verify::check_trust(chain.as_bytes(), names, trust).map(|_| l));
        let leaf = match checked {
            Ok(l) => l,
            Err(e) => {
                tracing::info!("skipping {}: {e:#}", d.display());
                continue;
            }
        };
        if let Some(cn) = names.first() {
            if !leaf
                .common_name
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(cn))
            {
                continue;
            }
        }
        // notBefore has one-second resolution and a CA may backdate it: two issued in the
        // same second tie, and the later publish (directory mtime) wins.
        let mtime = std::fs::metadata(&d)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let newer = match &best {
            None => true,
            Some(b) => (leaf.not_before, mtime) > (b.leaf.not_before, b.published),
        };
        if newer {
            best = Some(Found {
                published: mtime,
                dir: d,
                chain,
                key,
                leaf,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{ca_signed, self_signed};

    /// certbot's layout (links into `archive/`) is read with `WithinRoot` only, and a link
    /// that leaves the searched directory is refused even then.
    #[test]
    fn symlinks_are_followed_only_within_the_root_and_only_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let names = vec!["ftp.example".to_string()];
        let (ca, c, k) = ca_signed(&["ftp.example"], verify::now() - 3600);
        let trust = verify::Trust::Roots {
            file: "unit-test-roots.pem".into(),
            certs: verify::pem_certs(ca.as_bytes()),
        };
        let root = d.path().join("letsencrypt");
        let outside = d.path().join("outside");
        for dir in [
            root.join("archive/ftp"),
            root.join("live/ftp"),
            outside.clone(),
        ] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let link = |to: &Path, at: &str| {
            let at = root.join("live/ftp").join(at);
            let _ = std::fs::remove_file(&at);
            std::os::unix::fs::symlink(to, at).unwrap();
        };
        // Links out of the root: refused.
        std::fs::write(outside.join("fullchain1.pem"), &c).unwrap();
        std::fs::write(outside.join("privkey1.pem"), &k).unwrap();
        link(&outside.join("fullchain1.pem"), CHAIN);
        link(&outside.join("privkey1.pem"), KEY);
        assert!(newest_valid(&root, Links::WithinRoot, &names, &trust).is_none());
        // certbot's own links, inside it: read with WithinRoot, never with Refuse.
        std::fs::write(root.join("archive/ftp/fullchain1.pem"), &c).unwrap();
        std::fs::write(root.join("archive/ftp/privkey1.pem"), &k).unwrap();
        link(Path::new("../../archive/ftp/fullchain1.pem"), CHAIN);
        link(Path::new("../../archive/ftp/privkey1.pem"), KEY);
        assert!(newest_valid(&root, Links::WithinRoot, &names, &trust).is_some());
        assert!(newest_valid(&root, Links::Refuse, &names, &trust).is_none());
    }

    #[test]
    fn newest_valid_wins_and_broken_ones_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let names = vec!["ftp.example".to_string(), "n1.example".to_string()];
        let now = verify::now();
        let mut serials = Vec::new();
        let mut roots = Vec::new();
        for age in [10, 2, 5] {
            let (ca, c, k) = ca_signed(&["ftp.example", "n1.example"], now - age * 86400);
            roots.extend(verify::pem_certs(ca.as_bytes()));
            let leaf = verify::check_pair(c.as_bytes(), &k, &names).unwrap();
            publish(d.path(), "ftp.example", &c, &k, &leaf).unwrap();
            serials.push(leaf.serial);
        }
        // A newer pair with a mismatched key must not win.
        let (c, _) = self_signed(&["ftp.example", "n1.example"], now - 3600, 90);
        let (_, k2) = self_signed(&["ftp.example"], now, 90);
        let bad = d.path().join("certs/ftp.example/zz-bad");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join(CHAIN), c).unwrap();
        std::fs::write(bad.join(KEY), k2).unwrap();
        let trust = verify::Trust::Roots {
            file: "unit-test-roots.pem".into(),
            certs: roots,
        };
        // A planted self-signed pair, newest of all: not trusted, skipped.
        let (c, k) = self_signed(&["ftp.example", "n1.example"], now - 60, 90);
        let leaf = verify::check_pair(c.as_bytes(), &k, &names).unwrap();
        publish(d.path(), "ftp.example", &c, &k, &leaf).unwrap();
        let f = newest_valid(d.path(), Links::Refuse, &names, &trust).unwrap();
        assert_eq!(f.leaf.serial, serials[1]);
        // Wrong CN: nothing.
        assert!(
            newest_valid(d.path(), Links::Refuse, &["n1.example".to_string()], &trust).is_none()
        );
    }
}
