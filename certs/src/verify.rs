//! Certificate checks used before every install and by `inspect`: the chain parses and
//! links, the key matches the leaf, every name is covered, and the renewal clock.

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

/// Each certificate must be issued by the next one (names only: the CA's signature was
/// checked by the ACME client's TLS connection and is checked again by every client).
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
    let chain = parse_chain(chain_pem)?;
    check_links(&chain)?;
    let leaf = chain.into_iter().next().unwrap();
    if key_public(key_pem)? != leaf.public_key {
        bail!("the private key does not match the certificate");
    }
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

    #[test]
    fn due_at_one_third_of_lifetime() {
        let (c, _) = self_signed(&["ftp.example"], now() - 61 * 86400, 90);
        assert!(parse_chain(c.as_bytes()).unwrap()[0].due(now()));
        let (c, _) = self_signed(&["ftp.example"], now() - 59 * 86400, 90);
        assert!(!parse_chain(c.as_bytes()).unwrap()[0].due(now()));
    }
}
