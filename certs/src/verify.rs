//! Certificate checks used before every install and by `inspect`: the chain parses and
//! links, the key matches the leaf, every name is covered, and the renewal clock; and
//! before anything is published or installed, the trust check: every signature up to a
//! root CA the admin configured (`--issuer-ca`) or the system trust store, as a TLS client
//! would check it. Anyone who can write the shared directory can plant a pair whose names
//! link; only a CA can make one that chains.

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{KeyPair, PublicKeyData};
use serde::Serialize;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub common_name: Option<String>,
    pub sans: Vec<String>,
    pub issuer: String,
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The extendedKeyUsage purposes (`serverAuth`, `clientAuth`, an OID for others); None
    /// without the extension, which allows every purpose.
    pub eku: Option<Vec<String>>,
    #[serde(skip)]
    pub public_key: Vec<u8>,
    #[serde(skip)]
    pub subject_raw: Vec<u8>,
    #[serde(skip)]
    pub issuer_raw: Vec<u8>,
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl CertInfo {
    /// True when `name` is the CN or a DNS SAN (case-insensitive; exact names only).
    pub fn covers(&self, name: &str) -> bool {
        self.sans.iter().any(|s| s.eq_ignore_ascii_case(name))
            || self
                .common_name
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(name))
    }

    pub fn missing<'a>(&self, names: &'a [String]) -> Vec<&'a String> {
        names.iter().filter(|n| !self.covers(n)).collect()
    }

    pub fn lifetime(&self) -> i64 {
        self.not_after - self.not_before
    }

    /// Due for renewal: less than a third of its lifetime left (Let's Encrypt's advice; it
    /// keeps working as lifetimes shrink to 45 days), or expired, or not yet valid.
    pub fn due(&self, now: i64) -> bool {
        now < self.not_before || (self.not_after - now) * 3 < self.lifetime()
    }
}

fn parse_one(der: &[u8]) -> Result<CertInfo> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| anyhow!("{e}"))?;
    let mut sans = Vec::new();
    for ext in c.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for g in &san.general_names {
                if let GeneralName::DNSName(d) = g {
                    sans.push(d.to_string());
                }
            }
        }
    }
    let eku = match c.extended_key_usage() {
        Ok(Some(e)) => Some(lvs_shared::tpc::eku_names(e.value)),
        Ok(None) => None,
        Err(e) => bail!("bad extendedKeyUsage: {e}"),
    };
    let common_name = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Ok(CertInfo {
        subject: c.subject().to_string(),
        common_name,
        sans,
        issuer: c.issuer().to_string(),
        serial: c.raw_serial_as_string(),
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        eku,
        public_key: c.public_key().subject_public_key.data.to_vec(),
        subject_raw: c.subject().as_raw().to_vec(),
        issuer_raw: c.issuer().as_raw().to_vec(),
        der: der.to_vec(),
    })
}

/// The DER of every CERTIFICATE block in a PEM buffer.
pub fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(|p| p.ok())
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// Parses every CERTIFICATE block, leaf first. Fails on none or on garbage.
pub fn parse_chain(pem: &[u8]) -> Result<Vec<CertInfo>> {
    let mut out = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let p = p.map_err(|e| anyhow!("not PEM: {e}"))?;
        if p.label != "CERTIFICATE" {
            continue;
        }
        out.push(parse_one(&p.contents).with_context(|| format!("certificate {}", out.len() + 1))?);
    }
    if out.is_empty() {
        bail!("no CERTIFICATE block found");
    }
    Ok(out)
}

/// Each certificate must be issued by the next one, by name. (Signatures: [`check_trust`].)
pub fn check_links(chain: &[CertInfo]) -> Result<()> {
    for w in chain.windows(2) {
        if w[0].issuer_raw != w[1].subject_raw {
            bail!(
                "chain out of order: `{}` is issued by `{}`, but the next certificate is `{}`",
                w[0].subject,
                w[0].issuer,
                w[1].subject
            );
        }
    }
    Ok(())
}

/// The public key of a PEM private key (PKCS#8, PKCS#1 or SEC1), as in a certificate.
pub fn key_public(key_pem: &str) -> Result<Vec<u8>> {
    let kp = KeyPair::from_pem(key_pem).map_err(|_| anyhow!("not a readable private key"))?;
    let spki = kp.subject_public_key_info();
    let (_, s) = SubjectPublicKeyInfo::from_der(&spki).map_err(|e| anyhow!("{e}"))?;
    Ok(s.subject_public_key.data.to_vec())
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Everything an install needs: parses, links, key matches, names covered, not expired.
pub fn check_pair(chain_pem: &[u8], key_pem: &str, names: &[String]) -> Result<CertInfo> {
    let leaf = check_cert(chain_pem, names)?;
    if key_public(key_pem)? != leaf.public_key {
        bail!("the private key does not match the certificate");
    }
    Ok(leaf)
}

/// The same without the key: parses, links, names covered, not expired.
pub fn check_cert(chain_pem: &[u8], names: &[String]) -> Result<CertInfo> {
    let chain = parse_chain(chain_pem)?;
    check_links(&chain)?;
    let leaf = chain.into_iter().next().unwrap();
    let missing = leaf.missing(names);
    if !missing.is_empty() {
        let m: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        bail!("the certificate does not cover {}", m.join(", "));
    }
    let now = now();
    if now >= leaf.not_after {
        bail!("the certificate expired at {}", fmt_time(leaf.not_after));
    }
    if now < leaf.not_before {
        bail!(
            "the certificate is not valid before {}",
            fmt_time(leaf.not_before)
        );
    }
    Ok(leaf)
}

/// Whom an installed certificate must chain to.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The system trust store (what a grid client or browser trusts).
    System,
    /// The root CA(s) of a PEM file (`--issuer-ca`), e.g. a private or test CA, or an IGTF
    /// CA from /etc/grid-security/certificates.
    Roots {
        file: std::path::PathBuf,
        certs: Vec<Vec<u8>>,
    },
}

impl Trust {
    /// `--issuer-ca FILE` (named by `flag` in errors), or the system store.
    pub fn load(issuer_ca: Option<&std::path::Path>, flag: &str) -> Result<Trust> {
        let Some(f) = issuer_ca else {
            return Ok(Trust::System);
        };
        let certs = std::fs::read(f)
            .ok()
            .map(|b| pem_certs(&b))
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                crate::error::usage(
                    format!("{flag} {}", f.display()),
                    "not a readable PEM file with CERTIFICATE blocks",
                    "pass the PEM root CA that issues the certificates (for Let's Encrypt leave it out: the system store has ISRG Root X1)",
                )
            })?;
        Ok(Trust::Roots {
            file: f.to_path_buf(),
            certs,
        })
    }

    /// What the chain is checked against, for messages.
    pub fn describe(&self) -> String {
        match self {
            Trust::System => "the system trust store".into(),
            Trust::Roots { file, .. } => file.display().to_string(),
        }
    }
}

/// The chain verifies (signatures, validity, serverAuth) up to a trusted root, for the
/// first of `names` (or, with no names, the leaf's CN).
pub fn check_trust(chain_pem: &[u8], names: &[String], trust: &Trust) -> Result<()> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;
    let ders = pem_certs(chain_pem);
    let Some((leaf, rest)) = ders.split_first() else {
        bail!("no CERTIFICATE block found");
    };
    let name = match names.first() {
        Some(n) => n.clone(),
        None => parse_one(leaf)?
            .common_name
            .or_else(|| parse_one(leaf).ok()?.sans.first().cloned())
            .ok_or_else(|| anyhow!("the certificate names no host"))?,
    };
    let server = ServerName::try_from(name.clone()).map_err(|e| anyhow!("`{name}`: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::System => Arc::new(
            rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| anyhow!("loading the system trust store: {e}"))?,
        ),
        Trust::Roots { file, certs } => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs {
                roots
                    .add(CertificateDer::from(c.clone()))
                    .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| anyhow!("{}: {e}", file.display()))?
        }
    };
    let inter: Vec<CertificateDer<'static>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.clone()),
            &inter,
            &server,
            &[],
            UnixTime::now(),
        )
        .map_err(|e| {
            anyhow!(
                "the certificate does not chain to {} ({e})",
                trust.describe()
            )
        })?;
    Ok(())
}

pub fn fmt_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType};

    /// A self-signed certificate for `names` valid from `from` for `days`; (cert, key) PEM.
    pub fn self_signed(names: &[&str], from: i64, days: i64) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        p.distinguished_name = dn;
        p.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        p.not_after = time::OffsetDateTime::from_unix_timestamp(from + days * 86400).unwrap();
        (p.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn pair_checks() {
        let (c, k) = self_signed(&["ftp.example", "n1.example"], now() - 86400, 90);
        let leaf = check_pair(c.as_bytes(), &k, &s(&["n1.example", "FTP.example"])).unwrap();
        assert_eq!(leaf.common_name.as_deref(), Some("ftp.example"));
        assert!(!leaf.due(now()));
        let e = check_pair(c.as_bytes(), &k, &s(&["n2.example"])).unwrap_err();
        assert!(e.to_string().contains("n2.example"), "{e}");
        let (_, other) = self_signed(&["ftp.example"], now(), 90);
        let e = check_pair(c.as_bytes(), &other, &[]).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let (old, ok) = self_signed(&["ftp.example"], now() - 100 * 86400, 90);
        assert!(check_pair(old.as_bytes(), &ok, &[])
            .unwrap_err()
            .to_string()
            .contains("expired"));
        assert!(parse_chain(b"garbage").is_err());
    }

    /// A CA and a leaf it signed for `names`: (ca PEM, chain PEM, key PEM).
    pub fn ca_signed(names: &[&str], from: i64) -> (String, String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "unit test root");
        cp.distinguished_name = dn;
        let ca_cert = cp.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(cp, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        p.distinguished_name = dn;
        p.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        p.not_after = time::OffsetDateTime::from_unix_timestamp(from + 90 * 86400).unwrap();
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = p.signed_by(&key, &issuer).unwrap();
        (ca_cert.pem(), leaf.pem(), key.serialize_pem())
    }

    #[test]
    fn trust_needs_signatures_up_to_the_configured_root() {
        let d = tempfile::tempdir().unwrap();
        let (ca, chain, key) = ca_signed(&["ftp.example", "n1.example"], now() - 3600);
        let ca_file = d.path().join("ca.pem");
        std::fs::write(&ca_file, &ca).unwrap();
        let trust = Trust::load(Some(&ca_file), "--issuer-ca").unwrap();
        let names = s(&["ftp.example", "n1.example"]);
        check_pair(chain.as_bytes(), &key, &names).unwrap();
        check_trust(chain.as_bytes(), &names, &trust).unwrap();
        // A planted self-signed pair with the same names: links, matches, but is no CA's.
        let (planted, pk) = self_signed(&["ftp.example", "n1.example"], now() - 60, 90);
        check_pair(planted.as_bytes(), &pk, &names).unwrap();
        let e = check_trust(planted.as_bytes(), &names, &trust).unwrap_err();
        assert!(e.to_string().contains("does not chain"), "{e}");
        // One that names the real CA as issuer (names link) but was signed by another key.
        // (every call makes a new CA key under the same CA name)
        let (_, forged, _) = ca_signed(&["ftp.example", "n1.example"], now() - 60);
        let forged_chain = format!("{forged}{ca}");
        assert!(check_trust(forged_chain.as_bytes(), &names, &trust).is_err());
        // Not in the system store either.
        assert!(check_trust(chain.as_bytes(), &names, &Trust::System).is_err());
    }

    #[test]
    fn due_at_one_third_of_lifetime() {
        let (c, _) = self_signed(&["ftp.example"], now() - 61 * 86400, 90);
        assert!(parse_chain(c.as_bytes()).unwrap()[0].due(now()));
        let (c, _) = self_signed(&["ftp.example"], now() - 59 * 86400, 90);
        assert!(!parse_chain(c.as_bytes()).unwrap()[0].due(now()));
    }
}
