//! The ACME HTTP client: instant-acme's default hyper client, plus TCP_NODELAY. Without it
//! a JWS POST (headers and body in separate TLS records) waits for the server's delayed
//! ACK, about 40 ms per request; an order for 13 names makes some 40 requests.

use anyhow::{anyhow, Context, Result};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountBuilder, BodyWrapper};
use std::path::Path;

pub fn builder(root_ca: Option<&Path>) -> Result<AccountBuilder> {
    let https = match root_ca {
        Some(p) => {
            let mut roots = rustls::RootCertStore::empty();
            let pem = std::fs::read(p).with_context(|| format!("--root-ca {}", p.display()))?;
            for c in crate::verify::pem_certs(&pem) {
                roots
                    .add(rustls_pki_types::CertificateDer::from(c))
                    .map_err(|e| anyhow!("--root-ca {}: {e}", p.display()))?;
            }
            HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(
                    rustls::crypto::aws_lc_rs::default_provider().into(),
                )
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth(),
            )
        }
        None => HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| anyhow!("loading the system's CA roots: {e}"))?,
    };
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let conn = https
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let client: Client<_, BodyWrapper<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(conn);
    Ok(Account::builder_with_http(Box::new(client)))
}
