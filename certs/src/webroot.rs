//! HTTP-01 tokens in the shared webroot. Written atomically (a node never serves half a
//! token) and removed by a guard on every exit path: success, error, panic or signal.

use crate::error::usage;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const CHALLENGE_DIR: &str = ".well-known/acme-challenge";

/// Checks that the webroot exists and that we can write tokens, leaving nothing behind
/// except the challenge directory that certbot's webroot mode also creates.
pub fn prepare(webroot: &Path) -> Result<PathBuf> {
    let what = format!("--webroot {}", webroot.display());
    if !webroot.is_dir() {
        return Err(usage(
            &what,
            "not a directory",
            "pass the shared directory every node serves on port 80 (e.g. /mnt/nfsshare/webroot)",
        ));
    }
    let dir = webroot.join(CHALLENGE_DIR);
    let probe = dir.join(format!(".lvs-cert-probe-{}", std::process::id()));
    let res = std::fs::create_dir_all(&dir)
        .and_then(|_| lvs_shared::atomic::write(&probe, b"probe", 0o644))
        .and_then(|_| std::fs::remove_file(&probe));
    if let Err(e) = res {
        return Err(usage(
            &what,
            format!("cannot write {}: {e}", dir.display()),
            crate::error::writable_fix(
                &e,
                webroot,
                "make the webroot writable by this user (root on the node that runs lvs-cert), \
                 or pass the right directory",
            ),
        ));
    }
    Ok(dir)
}

/// Tokens written for one order; all removed when dropped.
pub struct Tokens {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl Tokens {
    pub fn new(dir: PathBuf) -> Tokens {
        Tokens {
            dir,
            files: Vec::new(),
        }
    }

    pub fn add(&mut self, token: &str, key_auth: &str) -> Result<()> {
        // ACME tokens are base64url; anything else would let a CA name a path.
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            anyhow::bail!("the CA sent a token that is not base64url: {token:?}");
        }
        let p = self.dir.join(token);
        // Recorded first, so a failed write is cleaned up too.
        self.files.push(p.clone());
        lvs_shared::atomic::write(&p, key_auth.as_bytes(), 0o644)
            .with_context(|| format!("writing token {}", p.display()))
    }
}

impl Drop for Tokens {
    fn drop(&mut self) {
        for f in self.files.drain(..) {
            let _ = std::fs::remove_file(&f);
        }
    }
}
