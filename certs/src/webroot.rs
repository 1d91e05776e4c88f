//! HTTP-01 tokens in the shared webroot. Written atomically (a node never serves half a
//! token) and removed by a guard on every exit path: success, error, panic or signal.
//!
//! The webroot is shared with every node's root: `.well-known/acme-challenge` is opened
//! without following a symlink and used through its descriptor ([`crate::sharedfs`]), so a
//! token is never written through a directory someone swapped for a link.

use crate::error::usage;
use crate::sharedfs::Dir;
use anyhow::{Context, Result};
use std::path::Path;

pub const CHALLENGE_DIR: &str = ".well-known/acme-challenge";

/// Checks that the webroot exists and that we can write tokens, leaving nothing behind
/// except the challenge directory that certbot's webroot mode also creates.
pub fn prepare(webroot: &Path) -> Result<Dir> {
    let what = format!("--webroot {}", webroot.display());
    if !webroot.is_dir() {
        return Err(usage(
            &what,
            "not a directory",
            "pass the shared directory every node serves on port 80 (e.g. /mnt/nfsshare/webroot)",
        ));
    }
    let dir = webroot.join(CHALLENGE_DIR);
    let res = Dir::open(webroot)
        .and_then(|d| d.sub_create(".well-known", 0o755))
        .and_then(|d| d.sub_create("acme-challenge", 0o755))
        .and_then(|d| {
            let (probe, _) = d.create_unique(".lvs-cert-probe-", 0o644)?;
            d.remove(&probe)?;
            Ok(d)
        });
    let d = match res {
        Ok(d) => d,
        Err(e) => return Err(usage(
            &what,
            format!("cannot write {}: {e}", dir.display()),
            crate::error::writable_fix(
                &e,
                webroot,
                "make the webroot writable by this user (root on the node that runs lvs-cert), \
                     or pass the right directory",
            ),
        )),
    };
    Ok(d)
}

/// Tokens written for one order; all removed when dropped.
pub struct Tokens {
    dir: Dir,
    files: Vec<String>,
}

impl Tokens {
    pub fn new(dir: Dir) -> Tokens {
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
        // Recorded first, so a failed write is cleaned up too.
        self.files.push(token.to_string());
        self.dir
            .write_atomic(token, key_auth.as_bytes(), 0o644)
            .context("writing an ACME token")
    }
}

impl Drop for Tokens {
    fn drop(&mut self) {
        for f in self.files.drain(..) {
            let _ = self.dir.remove(&f);
        }
    }
}
