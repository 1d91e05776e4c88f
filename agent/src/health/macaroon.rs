//! The fingerprint of XrdMacaroons' secret (`[report] macaroon_secret`, the file of
//! `macaroons.secretkey`). A macaroon is an HMAC under that secret: one issued by a node
//! verifies on another only if both hold the same secret. Behind a VIP a client gets its
//! macaroon from one node and uses it on whichever the director picks, so every node must
//! hold the same one. `/status` carries this fingerprint, never the secret, and
//! `pool status` compares them.
//!
//! The fingerprint is the first 64 bits of SHA-256 over a fixed label and the secret's text
//! without ASCII whitespace (XrdMacaroons reads base64 text; a trailing newline does not
//! change the key). 64 bits tell nodes apart and, for a random secret of 32 bytes or more as
//! XrdMacaroons requires, give nothing to guess from.

use super::Health;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A secret file larger than this is not a macaroon secret.
const LIMIT: u64 = 64 * 1024;
const LABEL: &[u8] = b"lvs-node macaroon secret v1\n";
/// How often the file is read again (a rotated secret shows within this).
pub const EVERY: Duration = Duration::from_secs(5);
/// A read that takes longer (a hung mount) is reported as an error.
const TIMEOUT: Duration = Duration::from_secs(2);

pub fn fingerprint(secret: &[u8]) -> String {
    let mut d = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    d.update(LABEL);
    let text: Vec<u8> = secret
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    d.update(&text);
    d.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the secret and returns its fingerprint, or why it cannot.
pub async fn read(path: PathBuf) -> Result<String, String> {
    let p = path.clone();
    let read = crate::util::blocking::off_runtime(move || {
        crate::util::fs::read_regular(&p, LIMIT).and_then(|d| {
            if d.iter().all(|b| b.is_ascii_whitespace()) {
                Err(format!("{} is empty", p.display()))
            } else {
                Ok(fingerprint(&d))
            }
        })
    });
    match tokio::time::timeout(TIMEOUT, read).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "reading {} took more than {TIMEOUT:?}",
            path.display()
        )),
    }
}

/// Keeps the health state's fingerprint of `path` current until the task is aborted.
pub async fn watch(path: PathBuf, health: Arc<Health>) {
    loop {
        let r = read(path.clone()).await;
        health.set_macaroon(Some((path.display().to_string(), r)));
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_does_not_change_it_the_secret_does_and_it_is_not_the_secret() {
        let a = fingerprint(b"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==\n");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            a,
            fingerprint(b"  c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==")
        );
        assert_ne!(
            a,
            fingerprint(b"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldB==")
        );
        assert!(!a.contains("c2Vj"));
    }
}
