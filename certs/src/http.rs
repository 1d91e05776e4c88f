//! The ACME HTTP client: instant-acme's hyper client with TCP_NODELAY, a connect timeout
//! and a deadline on every request (connect, TLS, headers and body), so a stalled CA cannot
//! hold the pool lock forever; and the words for its errors.
//!
//! TCP_NODELAY: without it a JWS POST (headers and body in separate TLS records) waits for
//! the server's delayed ACK, about 40 ms per request; an order for 13 names makes some 40.

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountBuilder, BodyWrapper, BytesResponse, HttpClient};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

/// ACME responses are small (a certificate chain is a few KiB).
const MAX_BODY: usize = 1 << 20;

/// No answer from the ACME server in time.
#[derive(Debug)]
pub struct Timeout(pub Duration);

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no complete answer from the ACME server within {}s (--http-timeout)",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for Timeout {}

struct Bounded<C> {
    inner: C,
    timeout: Duration,
}

type Hyper =
    Client<hyper_rustls::HttpsConnector<HttpConnector>, instant_acme::BodyWrapper<bytes::Bytes>>;

impl HttpClient for Bounded<Hyper> {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = self.inner.request(req);
        let timeout = self.timeout;
        Box::pin(async move {
            let work = async move {
                let rsp = fut
                    .await
                    .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
                let (parts, body) = rsp.into_parts();
                let body = Limited::new(body, MAX_BODY)
                    .collect()
                    .await
                    .map_err(instant_acme::Error::Other)?
                    .to_bytes();
                Ok(BytesResponse {
                    parts,
                    body: Box::new(body),
                })
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(instant_acme::Error::Other(Box::new(Timeout(timeout)))),
            }
        })
    }
}

pub fn builder(root_ca: Option<&Path>, timeout: Duration) -> Result<AccountBuilder> {
    Ok(Account::builder_with_http(client(root_ca, timeout)?))
}

/// A bounded GET of a small document (the ACME directory) with the same client.
pub async fn get(root_ca: Option<&Path>, timeout: Duration, url: &str) -> Result<Bytes> {
    let req = http::Request::get(url)
        .body(BodyWrapper::default())
        .with_context(|| format!("GET {url}"))?;
    let rsp = client(root_ca, timeout)?
        .request(req)
        .await
        .map_err(|e| anyhow!("GET {url}: {e}"))?;
    if !rsp.parts.status.is_success() {
        return Err(anyhow!("GET {url}: HTTP {}", rsp.parts.status));
    }
    let mut body = rsp.body;
    body.into_bytes()
        .await
        .map_err(|e| anyhow!("GET {url}: {}", describe(&*e)))
}

fn client(root_ca: Option<&Path>, timeout: Duration) -> Result<Box<dyn HttpClient>> {
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
    tcp.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
    let conn = https
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let client: Hyper = Client::builder(TokioExecutor::new()).build(conn);
    Ok(Box::new(Bounded {
        inner: client,
        timeout,
    }))
}

/// Every cause of an error, outermost first, joined with ": " (hyper's own message is only
/// `client error (Connect)`; the reason, e.g. the certificate error, is further down).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

/// The TLS error in a chain, if any. `io::Error::source()` skips the error it wraps (and
/// hyper-rustls wraps an io::Error in another), so each io::Error is opened by hand.
pub fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        cur = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

/// A TLS failure that retrying cannot heal: the server's certificate is not trusted, or
/// the two sides share no protocol. (A connection reset mid-handshake is an io error.)
pub fn permanent_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    use rustls::Error as R;
    matches!(
        tls_error(e),
        Some(
            R::InvalidCertificate(_)
                | R::NoCertificatesPresented
                | R::PeerIncompatible(_)
                | R::UnsupportedNameType
                | R::AlertReceived(_)
                | R::InvalidCertRevocationList(_)
        )
    )
}

/// True when the chain holds our request [`Timeout`].
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<Timeout>().is_some() {
            return true;
        }
        cur = c.source();
    }
    false
}
