//! The shared directory: issued certificates are published here so every node can install
//! them (`lvs-cert install --from DIR`), next to the lock and the renewal record.
//!
//! Layout: `DIR/certs/<label>/<notBefore>-<serial>/{fullchain.pem,privkey.pem}`; a new
//! directory is filled under a temporary name and renamed into place in one step.

use crate::verify::{self, CertInfo};
use anyhow::{Context, Result};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// `DIR/renewal.json`: the pool's names, and nothing else (see `cmd::renew`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SharedNames {
    pub vip: String,
    pub alt: Vec<String>,
}

pub const CHAIN: &str = "fullchain.pem";
pub const KEY: &str = "privkey.pem";

fn mkdir_private(p: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .with_context(|| format!("creating {}", p.display()))
}

/// Publishes a verified certificate and key; returns the new directory.
pub fn publish(
    shared: &Path,
    label: &str,
    chain: &str,
    key: &str,
    leaf: &CertInfo,
) -> Result<PathBuf> {
    let base = shared.join("certs").join(label);
    mkdir_private(&base)?;
    let tmp = base.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        leaf.serial.replace(':', "")
    ));
    mkdir_private(&tmp)?;
    let res = (|| -> Result<PathBuf> {
        lvs_shared::atomic::write(&tmp.join(KEY), key.as_bytes(), 0o600)?;
        lvs_shared::atomic::write(&tmp.join(CHAIN), chain.as_bytes(), 0o644)?;
        let dst = base.join(format!(
            "{}-{}",
            leaf.not_before,
            leaf.serial.replace(':', "")
        ));
        std::fs::rename(&tmp, &dst).with_context(|| format!("renaming into {}", dst.display()))?;
        std::fs::File::open(&base)?.sync_all()?;
        Ok(dst)
    })();
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res
}

/// A certificate found under a directory, verified.
pub struct Found {
    pub dir: PathBuf,
    pub published: std::time::SystemTime,
    pub chain: String,
    pub key: String,
    pub leaf: CertInfo,
}

/// Directories below `root` (up to 3 levels, `root` included) that hold a chain and key.
/// Accepts our layout and certbot's `live/NAME/` layout.
fn candidates(root: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let has = |c: &str| root.join(c).is_file();
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
                candidates(&e.path(), depth - 1, out);
            }
        }
    }
}

/// The newest (latest notBefore) certificate under `root` that verifies, chains to
/// `trust` and covers `names` with `names[0]` as its CN. Broken or untrusted candidates
/// (e.g. a pair planted by another writer of the share) are skipped with a note.
pub fn newest_valid(root: &Path, names: &[String], trust: &verify::Trust) -> Option<Found> {
    let mut dirs = Vec::new();
    candidates(root, 3, &mut dirs);
    let mut best: Option<Found> = None;
    for d in dirs {
        let chain_p = if d.join(CHAIN).is_file() {
            d.join(CHAIN)
        } else {
            d.join("cert.pem")
        };
        let (Ok(chain), Ok(key)) = (
            std::fs::read_to_string(&chain_p),
            std::fs::read_to_string(d.join(KEY)),
        ) else {
            continue;
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
        let f = newest_valid(d.path(), &names, &trust).unwrap();
        assert_eq!(f.leaf.serial, serials[1]);
        // Wrong CN: nothing.
        assert!(newest_valid(d.path(), &["n1.example".to_string()], &trust).is_none());
    }
}
