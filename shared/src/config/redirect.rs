//! `[[redirect]]`: HTTP redirects answered on a VIP, so that uploads go straight to a node
//! instead of through the director (in LVS-DR only the client-to-server direction crosses
//! the director, and an upload is all client-to-server payload).
//!
//! ```toml
//! [[redirect]]
//! listen = "192.0.2.100:8443"   # a configured VIP and a port
//! tls_cert = "/etc/grid-security/hostcert.pem"   # optional: plain HTTP without it
//! tls_key = "/etc/grid-security/hostkey.pem"
//! target = "https://gridftp-n1.example.org:8443" # optional: scheme://host[:port]
//! status = 307                  # 301 | 302 | 307 (default) | 308
//! choose = "self"               # "self" (default) | "pool"
//! ```

use crate::error::ConfigError;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    listen: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    target: Option<String>,
    status: Option<i64>,
    choose: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choose {
    /// Always this node: the director already chose it.
    SelfNode,
    /// A healthy node of `[pool] peers`, weighted by the weight each one reports.
    Pool,
}

impl Choose {
    pub fn as_str(self) -> &'static str {
        match self {
            Choose::SelfNode => "self",
            Choose::Pool => "pool",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub listen: SocketAddr,
    pub tls: Option<Tls>,
    /// `scheme://host[:port]` without a path; None: this node's FQDN, the listener's
    /// scheme and port.
    pub target: Option<String>,
    pub status: u16,
    pub choose: Choose,
}

impl Redirect {
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The base URL requests are sent to when this node is chosen.
    pub fn target_base(&self, fqdn: &str) -> String {
        match &self.target {
            Some(t) => t.clone(),
            None => {
                let port = self.listen.port();
                let default = if self.tls.is_some() { 443 } else { 80 };
                if port == default {
                    format!("{}://{fqdn}", self.scheme())
                } else {
                    format!("{}://{fqdn}:{port}", self.scheme())
                }
            }
        }
    }
}

/// Validates every `[[redirect]]` table against the node's VIPs.
pub fn validate(
    file: &Path,
    raw: Vec<RawRedirect>,
    vips: &[IpAddr],
) -> Result<Vec<Redirect>, ConfigError> {
    let mut out: Vec<Redirect> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let k = |f: &str| format!("redirect[{i}].{f}");
        let err =
            |key: String, problem: String, fix: &str| ConfigError::new(file, key, problem, fix);
        let listen_s = r.listen.ok_or_else(|| {
            err(
                k("listen"),
                "missing".into(),
                "set `listen = \"VIP:PORT\"`, e.g. \"192.0.2.100:8443\"",
            )
        })?;
        let listen: SocketAddr = listen_s.parse().map_err(|_| {
            err(
                k("listen"),
                format!("`{listen_s}` is not ADDRESS:PORT"),
                "write e.g. \"192.0.2.100:8443\" or \"[2001:db8::100]:8443\"",
            )
        })?;
        if !vips.contains(&listen.ip()) {
            return Err(err(
                k("listen"),
                format!("{} is not one of this node's [[vip]] addresses", listen.ip()),
                "listen on a configured VIP: the redirector answers what the director sends to the VIP; the storage server itself listens on the real IP",
            ));
        }
        if listen.port() == 0 {
            return Err(err(
                k("listen"),
                "port 0".into(),
                "use the service port clients connect to, e.g. 8443",
            ));
        }
        if out.iter().any(|o| o.listen == listen) {
            return Err(err(
                k("listen"),
                format!("{listen} is listed twice"),
                "remove the duplicate [[redirect]] table",
            ));
        }
        let abs = |key: String, s: String| -> Result<PathBuf, ConfigError> {
            let p = PathBuf::from(&s);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(err(
                    key,
                    format!("`{s}` is not an absolute path"),
                    "use the absolute path of the PEM file, e.g. /etc/grid-security/hostcert.pem",
                ))
            }
        };
        let tls = match (r.tls_cert, r.tls_key) {
            (None, None) => None,
            (Some(c), Some(kf)) => Some(Tls {
                cert: abs(k("tls_cert"), c)?,
                key: abs(k("tls_key"), kf)?,
            }),
            (Some(_), None) => {
                return Err(err(
                    k("tls_key"),
                    "tls_cert is set but tls_key is missing".into(),
                    "set both tls_cert and tls_key (the shared SAN certificate from lvs-cert), or neither for plain HTTP",
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    k("tls_cert"),
                    "tls_key is set but tls_cert is missing".into(),
                    "set both tls_cert and tls_key, or neither for plain HTTP",
                ))
            }
        };
        let target = match r.target {
            None => None,
            Some(t) => Some(check_target(&t).map_err(|p| {
                err(
                    k("target"),
                    p,
                    "write scheme://host[:port] without a path, e.g. \"https://gridftp-n1.example.org:8443\"",
                )
            })?),
        };
        let status = match r.status {
            None => 307,
            Some(s @ (301 | 302 | 307 | 308)) => s as u16,
            Some(s) => {
                return Err(err(
                    k("status"),
                    format!("{s} is not a redirect status this tool sends"),
                    "use 307 (the default: the method and body are kept), 308, 301 or 302",
                ))
            }
        };
        let choose = match r.choose.as_deref() {
            None | Some("self") => Choose::SelfNode,
            Some("pool") => Choose::Pool,
            Some(o) => return Err(err(
                k("choose"),
                format!("`{o}` is neither \"self\" nor \"pool\""),
                "write choose = \"self\" (this node) or \"pool\" (a healthy node of [pool] peers)",
            )),
        };
        out.push(Redirect {
            listen,
            tls,
            target,
            status,
            choose,
        });
    }
    Ok(out)
}

/// Accepts `http(s)://host[:port]` with an optional trailing slash; returns it without
/// the slash, so that `target + path` is the Location.
fn check_target(t: &str) -> Result<String, String> {
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| format!("`{t}` does not start with http:// or https://"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(format!("`{t}` has no host"));
    }
    if authority.contains(['/', '?', '#', '@']) || authority.contains(char::is_whitespace) {
        return Err(format!(
            "`{t}` has a path, query, user or space: only scheme://host[:port] is allowed"
        ));
    }
    Ok(t.strip_suffix('/').unwrap_or(t).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> Vec<RawRedirect> {
        #[derive(Deserialize)]
        struct W {
            redirect: Vec<RawRedirect>,
        }
        toml::from_str::<W>(toml_text).unwrap().redirect
    }

    fn vips() -> Vec<IpAddr> {
        vec!["192.0.2.100".parse().unwrap()]
    }

    #[test]
    fn defaults() {
        let r = validate(
            Path::new("n.toml"),
            raw("[[redirect]]\nlisten = \"192.0.2.100:8000\"\n"),
            &vips(),
        )
        .unwrap();
        assert_eq!(r[0].status, 307);
        assert_eq!(r[0].choose, Choose::SelfNode);
        assert_eq!(
            r[0].target_base("n1.example.org"),
            "http://n1.example.org:8000"
        );
    }

    #[test]
    fn tls_default_port_is_left_out() {
        let r = validate(
            Path::new("n.toml"),
            raw("[[redirect]]\nlisten = \"192.0.2.100:443\"\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n"),
            &vips(),
        )
        .unwrap();
        assert_eq!(r[0].target_base("n1.example.org"), "https://n1.example.org");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "listen = \"192.0.2.99:8000\"",
                "redirect[0].listen",
                "not one of",
            ),
            ("listen = \"nope\"", "redirect[0].listen", "ADDRESS:PORT"),
            (
                "listen = \"192.0.2.100:8000\"\nstatus = 200",
                "redirect[0].status",
                "200",
            ),
            (
                "listen = \"192.0.2.100:8000\"\nchoose = \"rr\"",
                "redirect[0].choose",
                "rr",
            ),
            (
                "listen = \"192.0.2.100:8000\"\ntls_cert = \"/c\"",
                "redirect[0].tls_key",
                "missing",
            ),
            (
                "listen = \"192.0.2.100:8000\"\ntarget = \"https://h/x\"",
                "redirect[0].target",
                "path",
            ),
            (
                "listen = \"192.0.2.100:8000\"\ntarget = \"ftp://h\"",
                "redirect[0].target",
                "http://",
            ),
        ];
        for (body, key, word) in cases {
            let e = validate(
                Path::new("n.toml"),
                raw(&format!("[[redirect]]\n{body}\n")),
                &vips(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(key) && e.contains(word), "{body}: {e}");
        }
    }
}
