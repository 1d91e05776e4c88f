//! TLS for the report endpoint's `https` listener, so that a peer reading `/status` knows
//! who answers (the host certificate, verified against its CA and the name it asked for) and
//! this node knows who asks (with `client_ca`: a client certificate from that CA, whose
//! name is in `allow_clients`, instead of a source address anyone on the LAN can spoof).
//!
//! The host certificate is followed on renewal as the redirector's is. The handshake runs
//! only after the gate admitted the connection (allow list, per-source cap, director
//! reserve) and within the header timeout, so strangers that open handshakes and never
//! finish them hold at most their share of slots, for at most that long.
//!
//! A client certificate is optional in the handshake (`/health` and `/metrics` stay
//! reachable without one); one that is presented must verify, or the handshake fails.

use crate::util::gate::Role;
use lvs_shared::config::daemon::Report;
use lvs_shared::error::ConfigError;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use x509_parser::extensions::GeneralName;

/// What the `https` listener was started with: a change restarts it (a changed CA
/// bundle or directory too, by its modification time).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub tls: Option<lvs_shared::config::tls::Pair>,
    pub client_ca: Option<(PathBuf, Option<SystemTime>)>,
    pub allow_clients: Vec<String>,
}

impl Key {
    pub fn of(r: &Report) -> Key {
        Key {
            tls: r.tls.clone(),
            client_ca: r.client_ca.clone().map(|p| {
                let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
                (p, m)
            }),
            allow_clients: r.allow_clients.clone(),
        }
    }
}

/// A ready `https` listener's TLS side.
pub struct Server {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// With `client_ca`: the names that count as directors (empty: any verified client).
    clients: Option<Vec<String>>,
}

/// The certificates of a CA bundle file or of a CA directory's files.
pub fn ca_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let files = if p.is_dir() {
        lvs_shared::http::ca_dir_files(p)
    } else {
        vec![p.to_path_buf()]
    };
    let mut out = Vec::new();
    for f in files {
        let certs = CertificateDer::pem_file_iter(&f)
            .map_err(|e| format!("{}: cannot read: {e}", f.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: not a PEM certificate file: {e}", f.display()))?;
        out.extend(certs);
    }
    if out.is_empty() {
        return Err(format!("{}: no CA certificate", p.display()));
    }
    Ok(out)
}

/// Checks that `key` is the private key of `cert`, with the error an admin can act on.
pub fn check_pair(
    file: &Path,
    (ck, cert): (&str, &Path),
    (kk, key): (&str, &Path),
) -> Result<(), ConfigError> {
    crate::util::tls::load(cert, key)
        .map(|_| ())
        .map_err(|e| {
            ConfigError::new(
                file,
                kk,
                e,
                format!(
                    "set {kk} to the private key of {ck} ({}): `openssl x509 -noout -pubkey -in CERT` and `openssl pkey -pubout -in KEY` must print the same key",
                    cert.display()
                ),
            )
        })
}

/// The TLS side of `[report] https`, or None without it. Errors name the config key.
pub fn server(file: &Path, r: &Report) -> Result<Option<Arc<Server>>, ConfigError> {
    let Some(pair) = &r.tls else {
        return Ok(None);
    };
    check_pair(
        file,
        ("report.tls_cert", &pair.cert),
        ("report.tls_key", &pair.key),
    )?;
    let resolver = crate::util::tls::Reloading::new("report.https", &pair.cert, &pair.key)
        .map_err(|e| ConfigError::new(file, "report.tls_cert", e, "use the host certificate"))?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new(file, "report.https", e.to_string(), "report a bug"))?;
    let builder = match &r.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let bad = |e: String| {
                ConfigError::new(
                    file,
                    "report.client_ca",
                    e,
                    "point client_ca at the PEM bundle or directory of the CA(s) that issued the directors' and peers' certificates",
                )
            };
            let mut roots = rustls::RootCertStore::empty();
            for c in ca_certs(ca).map_err(bad)? {
                roots
                    .add(c)
                    .map_err(|e| bad(format!("{}: {e}", ca.display())))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(Server {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
        clients: r
            .client_ca
            .as_ref()
            .map(|_| r.allow_clients.iter().map(|n| n.to_lowercase()).collect()),
    })))
}

impl Server {
    /// What a client that completed the handshake may see. Without `client_ca` the
    /// gate's address rule stands. With it, only a verified certificate (rustls checked
    /// the chain against `client_ca` during the handshake) whose subject CN or a DNS name
    /// is in `allow_clients` reads `/status` and `/pool`.
    pub fn role(&self, by_address: Role, peer_certs: Option<&[CertificateDer<'_>]>) -> Role {
        let Some(names) = &self.clients else {
            return by_address;
        };
        let Some(leaf) = peer_certs.and_then(|c| c.first()) else {
            return Role::Public;
        };
        let ok = names.is_empty() || cert_names(leaf).iter().any(|n| names.contains(n));
        if ok {
            Role::Director
        } else {
            Role::Public
        }
    }

    /// Whether `/status` is given by certificate here (then the plain listener gives it
    /// to nobody).
    pub fn by_certificate(r: &Report) -> bool {
        r.client_ca.is_some()
    }
}

/// The subject CNs and DNS names of a certificate, lowercased.
fn cert_names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut v: Vec<String> = c
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_lowercase)
        .collect();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for g in &san.value.general_names {
            if let GeneralName::DNSName(d) = g {
                v.push(d.to_lowercase());
            }
        }
    }
    v
}
