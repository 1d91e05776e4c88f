//! `certificate`: the host certificate is readable, valid now, not expiring within
//! `min_days`, and its names cover every VIP hostname (clients connect by that name).
//!
//! With `tpc_client = true` the certificate is also the one XRootD or its HTTP plugin
//! presents as a *client* in third-party copy, so its extendedKeyUsage must allow
//! clientAuth. Public TLS CAs dropped clientAuth (Let's Encrypt since February 2026); the
//! remote server then refuses the copy with an obscure "unsupported certificate purpose".
//! That is a warning, not a failure: the node still serves every client, and failing the
//! check would take the whole pool out at the first renewal, when every node gets the new
//! certificate at once. The warning is in the check's detail and logged once per change.

use super::{Check, CheckResult};
use crate::health::Health;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// A certificate file is a few KB; a chain with intermediates well under this.
pub const FILE_LIMIT: u64 = 1024 * 1024;

pub struct Certificate {
    /// The check's name: what it read is recorded under it in the health state.
    pub name: String,
    pub path: PathBuf,
    pub min_days: u32,
    pub hostnames: Vec<String>,
    pub tpc_client: bool,
    pub health: Arc<Health>,
    /// A read is still blocked in the kernel (a hung mount): no second thread is started
    /// for it, so a dead mount costs one thread, not one per interval.
    pub reading: Arc<AtomicBool>,
    /// The clientAuth warning was logged (logged again only after it went away).
    pub warned: AtomicBool,
}

impl Certificate {
    /// The file's bytes, read on a thread of its own (the runner's timeout bounds the
    /// wait; the thread may stay blocked in `open(2)` on a dead mount).
    async fn read(&self) -> Result<Vec<u8>, String> {
        if self.reading.swap(true, Ordering::AcqRel) {
            return Err(format!(
                "the previous read of {} has not returned (hung mount?)",
                self.path.display()
            ));
        }
        let (path, busy) = (self.path.clone(), self.reading.clone());
        crate::util::blocking::off_runtime(move || {
            let r = crate::util::fs::read_regular(&path, FILE_LIMIT);
            busy.store(false, Ordering::Release);
            r
        })
        .await?
    }

    fn record(&self, r: Result<i64, String>) {
        let path = self.path.display().to_string();
        self.health.set_certificate(&self.name, &path, r);
    }
}

impl Check for Certificate {
    async fn run(&self) -> CheckResult {
        let data = self
            .read()
            .await
            .inspect_err(|e| self.record(Err(e.clone())))?;
        self.record(parse(&data).map(|i| i.not_after));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let ok = inspect(&data, now, self.min_days, &self.hostnames)?;
        if !self.tpc_client {
            return Ok(ok);
        }
        let info = parse(&data)?;
        match info.tpc_client_problem() {
            None => {
                self.warned.store(false, Ordering::Relaxed);
                Ok(format!("{ok}; clientAuth allowed (TPC client)"))
            }
            Some(p) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(check = %self.name, path = %self.path.display(), "{p}; {TPC_FIX}");
                }
                Ok(format!("{ok}; WARNING: {p}; fix: {TPC_FIX}"))
            }
        }
    }
}

/// The way out when a TPC client certificate lacks clientAuth; doctor and the check say it.
pub use lvs_shared::tpc::CLIENT_AUTH_FIX as TPC_FIX;

/// What the checks need from a certificate: validity (unix seconds) and the names clients
/// match (DNS SANs, else the CN).
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub not_before: i64,
    pub not_after: i64,
    pub names: Vec<String>,
    /// The extendedKeyUsage purposes (`serverAuth`, `clientAuth`, ...); None without the
    /// extension, which allows every purpose.
    pub eku: Option<Vec<String>>,
}

impl CertInfo {
    /// Why a TLS server would refuse this certificate from a client, or None when
    /// clientAuth is allowed (no extendedKeyUsage, clientAuth, or anyExtendedKeyUsage).
    pub fn tpc_client_problem(&self) -> Option<String> {
        lvs_shared::tpc::client_auth_problem(self.eku.as_deref())
    }

    /// The hostnames among `hostnames` that no name of the certificate covers.
    pub fn uncovered<'a>(&self, hostnames: &'a [String]) -> Vec<&'a String> {
        hostnames
            .iter()
            .filter(|h| !self.names.iter().any(|n| covers(n, h)))
            .collect()
    }
}

/// Parses the first certificate of a PEM (or DER) file.
pub fn parse(data: &[u8]) -> Result<CertInfo, String> {
    let pem;
    let der: &[u8] = if data.starts_with(b"-----") {
        pem = Pem::iter_from_buffer(data)
            .find(|p| p.as_ref().is_ok_and(|p| p.label == "CERTIFICATE"))
            .ok_or("no CERTIFICATE block in the PEM file")?
            .map_err(|e| format!("bad PEM: {e}"))?;
        &pem.contents
    } else {
        data
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("bad certificate: {e}"))?;
    let v = cert.validity();
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for g in &san.value.general_names {
            if let GeneralName::DNSName(n) = g {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        // Only without DNS SANs do clients fall back to the CN.
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    let eku = match cert.extended_key_usage() {
        Ok(Some(e)) => Some(lvs_shared::tpc::eku_names(e.value)),
        Ok(None) => None,
        Err(e) => return Err(format!("bad extendedKeyUsage: {e}")),
    };
    Ok(CertInfo {
        not_before: v.not_before.timestamp(),
        not_after: v.not_after.timestamp(),
        names,
        eku,
    })
}

/// Checks the first certificate of a PEM (or DER) file at time `now` (unix seconds).
pub fn inspect(data: &[u8], now: i64, min_days: u32, hostnames: &[String]) -> CheckResult {
    let info = parse(data)?;
    let (nb, na) = (info.not_before, info.not_after);
    if now < nb {
        return Err("certificate is not valid yet".into());
    }
    if now >= na {
        return Err("certificate has expired".into());
    }
    let days_left = (na - now) / 86400;
    if days_left < min_days as i64 {
        return Err(format!(
            "certificate expires in {days_left} days (minimum {min_days})"
        ));
    }
    if let Some(h) = info.uncovered(hostnames).first() {
        return Err(format!("certificate does not cover {h}"));
    }
    Ok(format!("valid for {days_left} more days"))
}

/// RFC 6125 matching: exact, or a `*.` wildcard standing for exactly one left-most label.
pub fn covers(pattern: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if let Some(rest) = pattern.strip_prefix("*.") {
        return host
            .split_once('.')
            .is_some_and(|(first, tail)| !first.is_empty() && tail == rest);
    }
    pattern == host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_rules() {
        assert!(covers("gridftp.example.org", "GridFTP.example.org"));
        assert!(covers("*.example.org", "gridftp.example.org"));
        assert!(!covers("*.example.org", "a.b.example.org"));
        assert!(!covers("*.example.org", "example.org"));
    }

    /// Self-signed by openssl with the extendedKeyUsage given (None: no extension).
    fn openssl_cert(dir: &std::path::Path, name: &str, eku: Option<&str>) -> Vec<u8> {
        let mut c = std::process::Command::new("openssl");
        c.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=node1.example.org"]);
        if let Some(e) = eku {
            c.args(["-addext", &format!("extendedKeyUsage={e}")]);
        }
        let out = c
            .arg("-keyout")
            .arg(dir.join(format!("{name}.key")))
            .arg("-out")
            .arg(dir.join(format!("{name}.pem")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(dir.join(format!("{name}.pem"))).unwrap()
    }

    #[test]
    fn tpc_client_needs_client_auth() {
        let dir = std::env::temp_dir().join(format!("lvs-cert-eku-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server_only = parse(&openssl_cert(&dir, "s", Some("serverAuth"))).unwrap();
        assert_eq!(server_only.eku, Some(vec!["serverAuth".to_string()]));
        let p = server_only
            .tpc_client_problem()
            .expect("serverAuth only must be refused");
        assert!(
            p.contains("no clientAuth") && p.contains("(serverAuth)"),
            "{p}"
        );
        let both = parse(&openssl_cert(&dir, "b", Some("serverAuth,clientAuth"))).unwrap();
        assert_eq!(both.tpc_client_problem(), None);
        // No extension at all allows every purpose.
        let none = parse(&openssl_cert(&dir, "n", None)).unwrap();
        assert_eq!((none.eku.clone(), none.tpc_client_problem()), (None, None));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn real_certificate() {
        let dir = std::env::temp_dir().join(format!("lvs-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=node1.example.org",
            ])
            .args([
                "-addext",
                "subjectAltName=DNS:gridftp.example.org,DNS:node1.example.org",
            ])
            .arg("-keyout")
            .arg(dir.join("k.pem"))
            .arg("-out")
            .arg(dir.join("c.pem"))
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let data = std::fs::read(dir.join("c.pem")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let names = vec!["gridftp.example.org".to_string()];
        assert!(inspect(&data, now, 7, &names).is_ok());
        assert!(inspect(&data, now, 60, &names)
            .unwrap_err()
            .contains("expires in"));
        assert!(inspect(&data, now + 40 * 86400, 0, &names)
            .unwrap_err()
            .contains("expired"));
        let other = vec!["other.example.org".to_string()];
        assert!(inspect(&data, now, 7, &other)
            .unwrap_err()
            .contains("does not cover"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
