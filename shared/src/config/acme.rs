//! `[acme]`: the agent's HTTP-01 responder for a shared webroot, so sites need no httpd just
//! to let Let's Encrypt validate through the VIP.
//!
//! ```toml
//! [acme]
//! webroot = "/mnt/nfsshare/webroot"   # holds .well-known/acme-challenge/
//! port = 80                           # default 80
//! on = ["vip", "real"]                # default both: every VIP and real_ip
//! listen = ["192.0.2.11:8080"]        # optional extra explicit addresses
//! ```

use crate::error::ConfigError;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    webroot: Option<String>,
    port: Option<i64>,
    on: Option<Vec<String>>,
    #[serde(default)]
    listen: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub webroot: PathBuf,
    pub port: u16,
    /// Listen on every VIP address (the path validation takes through the director).
    pub on_vip: bool,
    /// Listen on the node's real_ip (the path the self-check and per-node names take).
    pub on_real: bool,
    pub listen: Vec<SocketAddr>,
}

impl Settings {
    /// The socket addresses to bind, given the node's VIPs and real IP.
    pub fn listeners(&self, vips: &[IpAddr], real_ip: Option<IpAddr>) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        if self.on_vip {
            out.extend(vips.iter().map(|a| SocketAddr::new(*a, self.port)));
        }
        if self.on_real {
            if let Some(r) = real_ip {
                out.push(SocketAddr::new(r, self.port));
            }
        }
        for l in &self.listen {
            if !out.contains(l) {
                out.push(*l);
            }
        }
        out
    }
}

pub fn validate(file: &Path, raw: RawAcme) -> Result<Settings, ConfigError> {
    let err = |key: &str, problem: String, fix: &str| ConfigError::new(file, key, problem, fix);
    let webroot = raw.webroot.ok_or_else(|| {
        err(
            "acme.webroot",
            "missing".into(),
            "set `webroot = \"/mnt/nfsshare/webroot\"` to the shared directory lvs-cert --webroot writes to",
        )
    })?;
    let webroot = PathBuf::from(webroot);
    if !webroot.is_absolute() {
        return Err(err(
            "acme.webroot",
            format!("`{}` is not an absolute path", webroot.display()),
            "use the absolute path of the shared webroot, e.g. /mnt/nfsshare/webroot",
        ));
    }
    let port = match raw.port {
        None => 80,
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => {
            return Err(err(
                "acme.port",
                format!("port {p} is out of range"),
                "leave it out (Let's Encrypt validates HTTP-01 on port 80) or use 1..65535",
            ))
        }
    };
    let (mut on_vip, mut on_real) = (true, true);
    if let Some(on) = raw.on {
        on_vip = false;
        on_real = false;
        for o in on {
            match o.as_str() {
                "vip" => on_vip = true,
                "real" => on_real = true,
                _ => {
                    return Err(err(
                        "acme.on",
                        format!("`{o}` is neither \"vip\" nor \"real\""),
                        "write on = [\"vip\", \"real\"] (the default), or a subset",
                    ))
                }
            }
        }
    }
    let mut listen = Vec::new();
    for (i, l) in raw.listen.iter().enumerate() {
        let a: SocketAddr = l.parse().map_err(|_| {
            err(
                &format!("acme.listen[{i}]"),
                format!("`{l}` is not ADDRESS:PORT"),
                "write e.g. \"192.0.2.11:80\" or \"[2001:db8::11]:80\"",
            )
        })?;
        listen.push(a);
    }
    if !on_vip && !on_real && listen.is_empty() {
        return Err(err(
            "acme.on",
            "the responder would listen nowhere".into(),
            "set on = [\"vip\", \"real\"] or add addresses to `listen`",
        ));
    }
    Ok(Settings {
        webroot,
        port,
        on_vip,
        on_real,
        listen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Settings, ConfigError> {
        let raw: RawAcme = toml::from_str(t).unwrap();
        validate(Path::new("/etc/lvs-node/node.toml"), raw)
    }

    #[test]
    fn defaults_and_listeners() {
        let s = parse("webroot = \"/shared/webroot\"").unwrap();
        assert_eq!(s.port, 80);
        let l = s.listeners(
            &["192.0.2.100".parse().unwrap()],
            Some("192.0.2.11".parse().unwrap()),
        );
        assert_eq!(
            l,
            vec![
                "192.0.2.100:80".parse().unwrap(),
                "192.0.2.11:80".parse().unwrap()
            ]
        );
    }

    #[test]
    fn errors_name_key() {
        assert_eq!(parse("port = 80").unwrap_err().key, "acme.webroot");
        assert_eq!(parse("webroot = \"rel\"").unwrap_err().key, "acme.webroot");
        assert_eq!(
            parse("webroot = \"/w\"\non = [\"both\"]").unwrap_err().key,
            "acme.on"
        );
        assert_eq!(
            parse("webroot = \"/w\"\nlisten = [\"x\"]").unwrap_err().key,
            "acme.listen[0]"
        );
        assert_eq!(
            parse("webroot = \"/w\"\nport = 0").unwrap_err().key,
            "acme.port"
        );
    }
}
