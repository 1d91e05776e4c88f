//! Private keys and PEM CSRs made with rcgen. The CN is kept (XRootD and GridFTP clients
//! still look at it) and every name is also a DNS SAN, as CAs require. CSRs for a CA's
//! registration authority ask for serverAuth and clientAuth (see [`Purposes`]).

use anyhow::{Context, Result};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, RsaKeySize, PKCS_ECDSA_P256_SHA256,
    PKCS_RSA_SHA256,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum KeyType {
    /// RSA 2048: what Globus GSI and every grid client accept (default).
    Rsa2048,
    Rsa4096,
    EcdsaP256,
}

pub fn generate_key(kt: KeyType) -> Result<KeyPair> {
    let k = match kt {
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        KeyType::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
    };
    k.context("generating the private key")
}

/// Optional subject fields, as `osg-cert-request` takes them.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct Subject {
    /// Subject C (two letters, e.g. US).
    #[arg(long)]
    pub country: Option<String>,
    /// Subject ST.
    #[arg(long)]
    pub state: Option<String>,
    /// Subject L.
    #[arg(long)]
    pub locality: Option<String>,
    /// Subject O.
    #[arg(long)]
    pub organization: Option<String>,
}

impl Subject {
    pub fn validate(&self) -> Result<()> {
        if let Some(c) = &self.country {
            if c.len() != 2 || !c.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(crate::error::usage(
                    "--country",
                    format!("`{c}` is not a two-letter country code"),
                    "use the ISO 3166 code, e.g. --country US",
                ));
            }
        }
        for (flag, v) in [
            ("--state", &self.state),
            ("--locality", &self.locality),
            ("--organization", &self.organization),
        ] {
            if let Some(v) = v {
                if v.trim().is_empty() || v.len() > 64 || v.chars().any(|c| c.is_control()) {
                    return Err(crate::error::usage(
                        flag,
                        format!("`{v}` must be 1..64 printable characters"),
                        "shorten it or leave the flag out",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Which purposes a CSR asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purposes {
    /// No extendedKeyUsage request: the CA's profile decides (ACME orders; an ACME CA
    /// takes only the names from the CSR).
    CaProfile,
    /// extendedKeyUsage serverAuth and clientAuth requested: the host certificate is also
    /// the client certificate of third-party copy (`lvs_shared::tpc`). IGTF profiles
    /// (InCommon IGTF server, GEANT TCS IGTF grid host, national grid CAs) issue both;
    /// a CA whose profile is server-only ignores the request.
    ServerAndClient,
}

/// A DER and PEM CSR for `names` (CN = names[0]) signed by `key`.
pub fn make_csr(
    names: &[String],
    subject: &Subject,
    key: &KeyPair,
    purposes: Purposes,
) -> Result<(Vec<u8>, String)> {
    let mut params = CertificateParams::new(names.to_vec()).context("building the CSR")?;
    if purposes == Purposes::ServerAndClient {
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
    }
    let mut dn = DistinguishedName::new();
    if let Some(v) = &subject.country {
        dn.push(DnType::CountryName, v.to_ascii_uppercase());
    }
    if let Some(v) = &subject.state {
        dn.push(DnType::StateOrProvinceName, v.as_str());
    }
    if let Some(v) = &subject.locality {
        dn.push(DnType::LocalityName, v.as_str());
    }
    if let Some(v) = &subject.organization {
        dn.push(DnType::OrganizationName, v.as_str());
    }
    dn.push(DnType::CommonName, names[0].as_str());
    params.distinguished_name = dn;
    let csr = params.serialize_request(key).context("signing the CSR")?;
    let pem = csr.pem().context("encoding the CSR")?;
    Ok((csr.der().to_vec(), pem))
}
