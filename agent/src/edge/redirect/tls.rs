//! TLS for a redirect listener. The certificate is the pool's shared SAN certificate
//! (CN = the VIP's name, SANs = the nodes), so the same file serves at the VIP and at each
//! node. `lvs-cert renew` replaces it in place; `util::tls::Reloading` follows it.

use crate::util::tls::Reloading;
use rustls::crypto::aws_lc_rs;
use std::path::Path;
use std::sync::Arc;

/// A TLS acceptor for HTTP/1.1 with the pair at `cert`/`key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    let resolver = Arc::new(Reloading::new("redirect", cert, key)?);
    let mut cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}
