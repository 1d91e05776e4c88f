//! `https`: GET an `https://` URL and expect a status (default any 2xx). The server
//! certificate must be valid now and carry the name (the URL's host, or `sni`); an expired
//! or wrong-name certificate fails the check with rustls' reason, which /health shows.
//! Grid storage often requires a client certificate: `client_cert`/`client_key`.
//!
//! The client is rebuilt when one of its files changes (a renewed host certificate used as
//! the client certificate must be picked up) or when the target's address changes. That
//! client ([`TlsClient`]) is the `webdav` check's too.

use super::{resolve, Check, CheckResult};
use lvs_shared::http::{self, reqwest, ClientOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub struct Https {
    pub tls: TlsClient,
    pub expect_status: Option<u16>,
}

/// One target URL and the client to ask it with: trust (`ca_file`, else the system roots),
/// a client certificate, `sni`; rebuilt when a file or the target's address changes.
pub struct TlsClient {
    pub target: String,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub sni: Option<String>,
    pub timeout: Duration,
    cache: Mutex<Option<(Key, reqwest::Client)>>,
}

/// What the built client depends on.
#[derive(PartialEq, Clone)]
struct Key {
    mtimes: Vec<Option<SystemTime>>,
    addr: Option<SocketAddr>,
}

impl Https {
    pub fn new(
        target: String,
        expect_status: Option<u16>,
        ca_file: Option<PathBuf>,
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        sni: Option<String>,
        timeout: Duration,
    ) -> Https {
        Https {
            tls: TlsClient::new(target, ca_file, client_cert, client_key, sni, timeout),
            expect_status,
        }
    }
}

impl TlsClient {
    pub fn new(
        target: String,
        ca_file: Option<PathBuf>,
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        sni: Option<String>,
        timeout: Duration,
    ) -> TlsClient {
        TlsClient {
            target,
            ca_file,
            client_cert,
            client_key,
            sni,
            timeout,
            cache: Mutex::new(None),
        }
    }

    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.ca_file
            .iter()
            .chain(self.client_cert.iter())
            .chain(self.client_key.iter())
    }

    /// The URL to request: with `sni`, the host part is replaced by that name, which the
    /// client resolves to the target's address.
    pub fn url(&self) -> Result<(String, Option<(String, u16)>), String> {
        let Some(sni) = &self.sni else {
            return Ok((self.target.clone(), None));
        };
        let (host, port) = http::host_port(&self.target)?;
        let mut u = reqwest::Url::parse(&self.target).map_err(|e| e.to_string())?;
        u.set_host(Some(sni))
            .map_err(|e| format!("sni `{sni}`: {e}"))?;
        Ok((u.to_string(), Some((host, port))))
    }

    pub async fn client(
        &self,
        connect_to: Option<(String, u16)>,
    ) -> Result<reqwest::Client, String> {
        let addr = match &connect_to {
            Some((h, p)) => Some(match h.parse::<std::net::IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, *p),
                Err(_) => resolve(&format!("{h}:{p}")).await?,
            }),
            None => None,
        };
        let key = Key {
            mtimes: self
                .files()
                .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
                .collect(),
            addr,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, c)) = cache.as_ref() {
            if *k == key {
                return Ok(c.clone());
            }
        }
        let opts = ClientOptions {
            ca_file: self.ca_file.clone(),
            system_roots: self.ca_file.is_none(),
            client_cert: self.client_cert.clone().zip(self.client_key.clone()),
            resolve: match (&self.sni, addr) {
                (Some(sni), Some(a)) => vec![(sni.clone(), a)],
                _ => Vec::new(),
            },
            ..ClientOptions::with_timeout(self.timeout)
        };
        let c = opts.build()?;
        *cache = Some((key, c.clone()));
        Ok(c)
    }
}

impl TlsClient {
    /// rustls does not always say which name it expected: add it.
    pub fn name_the_name(&self, e: String) -> String {
        if !e.contains("the requested name") {
            return e;
        }
        let name = self
            .sni
            .clone()
            .or_else(|| http::host_port(&self.target).ok().map(|(h, _)| h))
            .unwrap_or_default();
        e.replace("the requested name", &format!("name \"{name}\""))
    }
}

impl Check for Https {
    async fn run(&self) -> CheckResult {
        let (url, connect_to) = self.tls.url()?;
        let client = self.tls.client(connect_to).await?;
        let r = http::get(&client, &url, None, super::http::BODY_LIMIT)
            .await
            .map_err(|e| self.tls.name_the_name(e))?;
        let ok = match self.expect_status {
            Some(s) => r.status == s,
            None => (200..300).contains(&r.status),
        };
        if ok {
            Ok(format!("HTTPS {}", r.status))
        } else {
            Err(format!(
                "HTTPS {} (expected {})",
                r.status,
                self.expect_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "2xx".into())
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_rewrites_the_host() {
        let h = Https::new(
            "https://127.0.0.1:8443/p?q=1".into(),
            None,
            None,
            None,
            None,
            Some("gridftp.example.org".into()),
            Duration::from_secs(1),
        );
        let (url, to) = h.tls.url().unwrap();
        assert_eq!(url, "https://gridftp.example.org:8443/p?q=1");
        assert_eq!(to, Some(("127.0.0.1".into(), 8443)));
    }
}
