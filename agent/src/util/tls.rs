//! A certificate and key served over TLS and followed on renewal (the redirector's shared
//! SAN certificate, the report endpoint's host certificate). `lvs-cert renew` and the grid
//! tools replace the files in place: they are looked at again at most every few seconds and
//! a changed pair is loaded without a restart. A pair that fails to load keeps the previous
//! one (and says so once). [`load`] is also the check that a key belongs to its certificate.

use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const RECHECK: Duration = Duration::from_secs(5);
/// A certificate chain or key file is a few KB.
const FILE_LIMIT: u64 = 1024 * 1024;

/// Loads a certificate chain and its key, with errors that name the file.
/// Both files are read as regular files of bounded size, never waiting on a FIFO.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let cert_pem = super::fs::read_regular(cert, FILE_LIMIT)?;
    let key_pem = super::fs::read_regular(key, FILE_LIMIT)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: cannot read a PEM private key: {e}", key.display()))?;
    let signing = aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|e| format!("{}: unsupported private key: {e}", key.display()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        format!(
            "{} and {}: the key does not match the certificate: {e}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Arc::new(ck))
}

fn mtimes(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    seen: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

/// Serves the pair from disk and follows its replacement. A handshake only ever reads the
/// pair in memory: the files are looked at on a thread of its own (at most one at a time),
/// so a hung mount delays the next certificate, never a handshake.
#[derive(Debug)]
pub struct Reloading {
    /// What serves it, for the log (`redirect`, `report.https`).
    what: &'static str,
    cert: PathBuf,
    key: PathBuf,
    current: Arc<Mutex<Current>>,
    looking: Arc<AtomicBool>,
}

impl Reloading {
    pub fn new(what: &'static str, cert: &Path, key: &Path) -> Result<Reloading, String> {
        let seen = mtimes(cert, key);
        Ok(Reloading {
            current: Arc::new(Mutex::new(Current {
                key: load(cert, key)?,
                seen,
                checked: Instant::now(),
            })),
            what,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            looking: Arc::new(AtomicBool::new(false)),
        })
    }

    fn get(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.checked.elapsed() >= RECHECK && !self.looking.swap(true, Ordering::AcqRel) {
            cur.checked = Instant::now();
            let seen = cur.seen;
            let (cert, key) = (self.cert.clone(), self.key.clone());
            let (current, looking) = (self.current.clone(), self.looking.clone());
            let what = self.what;
            let spawned = std::thread::Builder::new()
                .name("tls-reload".into())
                .spawn(move || {
                    let now = mtimes(&cert, &key);
                    if now != seen {
                        let loaded = load(&cert, &key);
                        let mut cur = current.lock().unwrap_or_else(|p| p.into_inner());
                        cur.seen = now;
                        match loaded {
                            Ok(k) => {
                                tracing::info!(cert = %cert.display(), "{what}: certificate reloaded");
                                cur.key = k;
                            }
                            Err(e) => {
                                tracing::warn!("{what}: keeping the previous certificate: {e}")
                            }
                        }
                    }
                    looking.store(false, Ordering::Release);
                });
            if spawned.is_err() {
                self.looking.store(false, Ordering::Release);
            }
        }
        cur.key.clone()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}
