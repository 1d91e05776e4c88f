//! The one HTTP client of the project (reqwest with rustls), for the `http`/`https` checks,
//! `lvs-node probe`, `doctor`, `lvs-node pool`, `director-config --pool` and the ACME
//! self-check. Everything goes through [`ClientOptions::build`] and [`get`], so every
//! caller gets the same bounds: a whole-request timeout, a capped body, no proxy, no
//! redirects, and errors worded the way admins know them (`connection refused`,
//! `certificate expired: ...`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use reqwest;

/// How to build a client. `Default` is a plain client with a 2 s timeout and the system's
/// CA roots.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole request, connect to the last body byte.
    pub timeout: Duration,
    /// Trust only the certificates of this PEM file (a private or test CA), or of the CA
    /// files in this directory (`*.pem` and `HASH.N`, as in /etc/grid-security/certificates),
    /// instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Load the system's CA roots for `https://` URLs without `ca_file`. Off by default:
    /// loading them costs hundreds of milliseconds, which `probe` (one process per
    /// keepalived check) and the plain-http callers must not pay. With neither this nor
    /// `ca_file`, every https server is refused as of unknown issuer.
    pub system_roots: bool,
    /// A client certificate and its key (PEM), for servers that require one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Send requests for this host name to this address. With an `https://NAME/` URL this
    /// sets the SNI (and the name the certificate must match) independently of where the
    /// connection goes.
    pub resolve: Vec<(String, SocketAddr)>,
    /// Keep idle connections for reuse. `false` opens a fresh connection for every request
    /// (so a director behind the address chooses again each time).
    pub pool: bool,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(2),
            ca_file: None,
            system_roots: false,
            client_cert: None,
            resolve: Vec::new(),
            pool: true,
            user_agent: format!("lvs-node/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl ClientOptions {
    pub fn with_timeout(timeout: Duration) -> Self {
        ClientOptions {
            timeout,
            ..ClientOptions::default()
        }
    }

    /// Builds the client. Errors name the file that could not be used.
    pub fn build(&self) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(self.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .http1_only();
        if !self.pool {
            b = b.pool_max_idle_per_host(0);
        }
        if let Some(p) = &self.ca_file {
            let pem = if p.is_dir() {
                let mut all = Vec::new();
                for f in ca_dir_files(p) {
                    all.extend(
                        std::fs::read(&f)
                            .map_err(|e| format!("cannot read {}: {e}", f.display()))?,
                    );
                    all.push(b'\n');
                }
                all
            } else {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
            };
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("{}: not a PEM certificate bundle: {e}", p.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no certificate in the file", p.display()));
            }
            b = b.tls_certs_only(certs);
        } else if !self.system_roots {
            b = b.tls_certs_only(Vec::new());
        }
        if let Some((cert, key)) = &self.client_cert {
            let mut pem =
                std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?,
            );
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!(
                    "{} / {}: not a PEM certificate and key: {}",
                    cert.display(),
                    key.display(),
                    reason(&e)
                )
            })?;
            b = b.identity(id);
        }
        for (name, addr) in &self.resolve {
            b = b.resolve(name, *addr);
        }
        b.build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", reason(&e)))
    }
}

/// The CA certificate files of a directory such as /etc/grid-security/certificates: regular
/// files named `*.pem` or `HASH.N` (N a digit string), sorted. CRLs (`HASH.rN`), signing
/// policies and namespace files are left out.
pub fn ca_dir_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ca = name.ends_with(".pem")
                || name.rsplit_once('.').is_some_and(|(h, n)| {
                    !h.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                });
            ca && p.is_file()
        })
        .collect();
    v.sort();
    v
}

/// A response whose body was read up to a limit.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The response headers (the WebDAV check reads `DAV`).
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET `url`, reading at most `limit` bytes of body (more is an error, never a truncated
/// answer taken for a whole one). `host` overrides the Host header (the ACME self-check
/// asks a node's real IP for the validated name).
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    host: Option<&str>,
    limit: usize,
) -> Result<Response, String> {
    let mut req = client.get(url);
    if let Some(h) = host {
        req = req.header(reqwest::header::HOST, h);
    }
    read(req, limit).await
}

/// Any method (OPTIONS, PROPFIND) with extra headers and a body, under the same bounds as
/// [`get`].
pub async fn request(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    limit: usize,
) -> Result<Response, String> {
    let m = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("`{method}` is not an HTTP method"))?;
    let mut req = client.request(m, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if !body.is_empty() {
        req = req.body(body);
    }
    read(req, limit).await
}

/// Sends `req` and reads its body up to `limit` bytes.
async fn read(req: reqwest::RequestBuilder, limit: usize) -> Result<Response, String> {
    let mut resp = req.send().await.map_err(|e| reason(&e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("response larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| reason(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("response larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The useful part of a client error: the innermost cause (reqwest's own outer message
/// only repeats the URL), with I/O errors worded as admins know them.
pub fn reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &(dyn std::error::Error + 'static) = e;
    let mut timeout = false;
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            timeout |= r.is_timeout();
        }
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return format!("TLS: {}", tls_reason(t));
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
                std::io::ErrorKind::UnexpectedEof => return "connection closed early".into(),
                std::io::ErrorKind::TimedOut => timeout = true,
                _ => {}
            }
        }
        inner = c;
        // An io::Error's source() skips the error it wraps (rustls wraps its errors in
        // io::Errors, sometimes twice): step into the wrapped one.
        cur = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    if timeout {
        return "timed out".into();
    }
    let msg = inner.to_string();
    if msg.contains("certificate") || msg.contains("handshake") || msg.contains("alert") {
        format!("TLS: {msg}")
    } else if msg.is_empty() {
        e.to_string()
    } else {
        msg
    }
}

/// A TLS failure in the words an admin searches for.
fn tls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => match c {
                C::ExpiredContext { not_after, .. } => format!(
                    "certificate expired (not after {} UTC, unix time)",
                    not_after.as_secs()
                ),
                _ => "certificate expired".into(),
            },
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".into(),
            C::NotValidForName => "certificate not valid for the requested name".into(),
            C::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate not valid for name {}; it is valid for {}",
                expected.to_str(),
                presented.join(", ").replace('"', "")
            ),
            C::UnknownIssuer => {
                "certificate issuer unknown (not signed by a trusted CA; set the CA file)".into()
            }
            C::Revoked => "certificate revoked".into(),
            C::BadSignature => "certificate signature invalid".into(),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "certificate not valid for this purpose (extendedKeyUsage)".into()
            }
            other => format!("invalid certificate: {other:?}"),
        },
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            "the server requires a client certificate (alert CertificateRequired)".into()
        }
        rustls::Error::AlertReceived(a) => format!("the server sent alert {a:?}"),
        other => other.to_string(),
    }
}

/// Splits a URL's authority into what `resolve` needs: (host as in the URL without
/// brackets, port). Only `http` and `https` are accepted.
pub fn host_port(url: &str) -> Result<(String, u16), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let default = match u.scheme() {
        "http" => 80,
        "https" => 443,
        s => return Err(format!("`{url}`: scheme `{s}` is not http or https")),
    };
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`{url}` has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, u.port().unwrap_or(default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        assert_eq!(
            host_port("http://192.0.2.11:8080/x").unwrap(),
            ("192.0.2.11".into(), 8080)
        );
        assert_eq!(
            host_port("https://[2001:db8::1]/").unwrap(),
            ("2001:db8::1".into(), 443)
        );
        assert_eq!(host_port("http://h").unwrap(), ("h".into(), 80));
        assert!(host_port("ftp://h/").is_err());
        assert!(host_port("not a url").is_err());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let e = ClientOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..ClientOptions::default()
        }
        .build()
        .unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
