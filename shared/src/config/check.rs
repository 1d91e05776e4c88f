//! One `[[check]]` table of `lvs-node run`: its raw keys, the validated kind, and the
//! rules per kind. Every error names the key (`check[2].timeout`) and the fix.

use super::Vip;
use crate::error::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    // gridftp, tcp, xrootd; https, webdav (a URL)
    pub target: Option<String>,
    // xrootd
    pub login: Option<bool>,
    pub stat: Option<String>,
    // http
    pub url: Option<String>,
    // http, https, webdav
    pub expect_status: Option<i64>,
    // https, webdav
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub sni: Option<String>,
    // command
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    // filesystem
    pub path: Option<String>,
    pub min_free: Option<String>,
    pub writable: Option<bool>,
    // certificate
    pub cert: Option<String>,
    pub min_days: Option<i64>,
    pub hostnames: Option<Vec<String>>,
    pub tpc_client: Option<bool>,
}

/// Free-space threshold of a filesystem check.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum MinFree {
    Percent(f64),
    Bytes(u64),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CheckKind {
    Gridftp {
        target: String,
    },
    Tcp {
        target: String,
    },
    Http {
        url: String,
        expect_status: u16,
    },
    /// GET an `https://` URL and verify the server certificate (validity and name).
    Https {
        target: String,
        /// None: any 2xx.
        expect_status: Option<u16>,
        /// Trust only this CA bundle instead of the system roots.
        ca_file: Option<PathBuf>,
        /// Client certificate and key, for servers that require one.
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        /// TLS server name (and the name the certificate must match) when it differs from
        /// the URL's host, e.g. the VIP hostname while connecting to 127.0.0.1.
        sni: Option<String>,
    },
    Command {
        command: Vec<String>,
        /// Run as this user (and its primary group) instead of root.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    Filesystem {
        path: PathBuf,
        min_free: MinFree,
        writable: bool,
    },
    Certificate {
        cert: PathBuf,
        min_days: u32,
        hostnames: Vec<String>,
        /// XRootD or its HTTP plugin presents this certificate as a client in third-party
        /// copy: it must allow clientAuth (a warning otherwise).
        tpc_client: bool,
    },
    /// The XRootD protocol: handshake, login (unless `login = false`), ping, and a stat of
    /// `stat`.
    Xrootd {
        target: String,
        login: bool,
        stat: Option<String>,
    },
    /// WebDAV: OPTIONS must answer with a `DAV` header, PROPFIND (Depth: 0) of the URL's
    /// path must answer `expect_status`. The TLS keys are the `https` check's.
    Webdav {
        target: String,
        expect_status: u16,
        ca_file: Option<PathBuf>,
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        sni: Option<String>,
    },
}

impl CheckKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Gridftp { .. } => "gridftp",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Http { .. } => "http",
            CheckKind::Https { .. } => "https",
            CheckKind::Command { .. } => "command",
            CheckKind::Filesystem { .. } => "filesystem",
            CheckKind::Certificate { .. } => "certificate",
            CheckKind::Xrootd { .. } => "xrootd",
            CheckKind::Webdav { .. } => "webdav",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckSpec {
    pub name: String,
    #[serde(with = "crate::duration::serde_dur")]
    pub interval: Duration,
    #[serde(with = "crate::duration::serde_dur")]
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    #[serde(flatten)]
    pub kind: CheckKind,
}

const KINDS: &str = "gridftp, tcp, http, https, webdav, command, filesystem, certificate, xrootd";

pub(super) fn validate_check(
    file: &Path,
    i: usize,
    rc: RawCheck,
    vips: &[Vip],
) -> Result<CheckSpec, ConfigError> {
    let k = |f: &str| format!("check[{i}].{f}");
    let err = |f: &str, problem: String, fix: &str| ConfigError::new(file, k(f), problem, fix);
    let kind = rc.kind.clone().ok_or_else(|| {
        err(
            "kind",
            "missing".into(),
            &format!("set `kind` to one of: {KINDS}"),
        )
    })?;
    let name = rc.name.clone().unwrap_or_else(|| kind.clone());
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(err(
            "name",
            format!("`{name}` is not a valid check name"),
            "use 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    let dur = |f: &str, v: &Option<String>, default: Duration| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => {
                let d = crate::duration::parse(s).map_err(|p| {
                    err(f, p, "write a duration such as \"500ms\", \"2s\" or \"1m\"")
                })?;
                if d.is_zero() {
                    return Err(err(f, "must be more than zero".into(), "use e.g. \"1s\""));
                }
                Ok(d)
            }
        }
    };
    let interval = dur("interval", &rc.interval, Duration::from_secs(2))?;
    let timeout = dur("timeout", &rc.timeout, Duration::from_secs(1).min(interval))?;
    if timeout > interval {
        return Err(err(
            "timeout",
            format!(
                "{} is longer than the interval ({})",
                crate::duration::format(timeout),
                crate::duration::format(interval)
            ),
            "make the timeout at most the interval, so one probe ends before the next starts",
        ));
    }
    let count = |f: &str, v: Option<i64>, default: u32| -> Result<u32, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if (1..=100).contains(&n) => Ok(n as u32),
            Some(n) => Err(err(f, format!("{n} is out of range"), "use 1 to 100")),
        }
    };
    let rise = count("rise", rc.rise, 2)?;
    let fall = count("fall", rc.fall, 2)?;

    // Which kind-specific keys were given, so a key that does nothing for this kind is an
    // error rather than silently ignored.
    let given: Vec<&str> = [
        ("target", rc.target.is_some()),
        ("login", rc.login.is_some()),
        ("stat", rc.stat.is_some()),
        ("url", rc.url.is_some()),
        ("expect_status", rc.expect_status.is_some()),
        ("ca_file", rc.ca_file.is_some()),
        ("client_cert", rc.client_cert.is_some()),
        ("client_key", rc.client_key.is_some()),
        ("sni", rc.sni.is_some()),
        ("command", rc.command.is_some()),
        ("user", rc.user.is_some()),
        ("path", rc.path.is_some()),
        ("min_free", rc.min_free.is_some()),
        ("writable", rc.writable.is_some()),
        ("cert", rc.cert.is_some()),
        ("min_days", rc.min_days.is_some()),
        ("hostnames", rc.hostnames.is_some()),
        ("tpc_client", rc.tpc_client.is_some()),
    ]
    .into_iter()
    .filter(|(_, g)| *g)
    .map(|(n, _)| n)
    .collect();
    let allowed: &[&str] = match kind.as_str() {
        "gridftp" | "tcp" => &["target"],
        "xrootd" => &["target", "login", "stat"],
        "http" => &["url", "expect_status"],
        "https" | "webdav" => &[
            "target",
            "expect_status",
            "ca_file",
            "client_cert",
            "client_key",
            "sni",
        ],
        "command" => &["command", "user"],
        "filesystem" => &["path", "min_free", "writable"],
        "certificate" => &["cert", "min_days", "hostnames", "tpc_client"],
        other => {
            return Err(err(
                "kind",
                format!("unknown kind `{other}`"),
                &format!("use one of: {KINDS}"),
            ))
        }
    };
    if let Some(bad) = given.iter().find(|g| !allowed.contains(g)) {
        return Err(err(
            bad,
            format!("`{bad}` does not apply to a {kind} check"),
            &format!("remove it; a {kind} check takes: {}", allowed.join(", ")),
        ));
    }
    let target = |default: &str| -> Result<String, ConfigError> {
        let t = rc.target.clone().unwrap_or_else(|| default.to_string());
        // host:port; names are allowed (resolved at check time).
        match t.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => Ok(t),
            _ => Err(err(
                "target",
                format!("`{t}` is not HOST:PORT"),
                "write e.g. \"127.0.0.1:2811\"",
            )),
        }
    };
    let kind = match kind.as_str() {
        "gridftp" => CheckKind::Gridftp {
            target: target("127.0.0.1:2811")?,
        },
        "xrootd" => {
            let login = rc.login.unwrap_or(true);
            let stat = match &rc.stat {
                None => None,
                Some(_) if !login => {
                    return Err(err(
                        "stat",
                        "needs a login, and `login = false` is set".into(),
                        "remove `login = false` (XRootD answers kXR_stat only after kXR_login), or remove `stat`",
                    ))
                }
                Some(p) => {
                    let ok = p.starts_with('/')
                        && p.len() <= 1024
                        && p.bytes().all(|b| (0x21..0x7f).contains(&b));
                    if !ok {
                        return Err(err(
                            "stat",
                            format!("`{p}` is not an absolute path of printable characters without spaces"),
                            "name a file the server exports, e.g. stat = \"/data/lvs-node-probe\"",
                        ));
                    }
                    Some(p.clone())
                }
            };
            CheckKind::Xrootd {
                target: target("127.0.0.1:1094")?,
                login,
                stat,
            }
        }
        "tcp" => {
            if rc.target.is_none() {
                return Err(err(
                    "target",
                    "missing".into(),
                    "set `target = \"127.0.0.1:PORT\"`",
                ));
            }
            CheckKind::Tcp {
                target: target("")?,
            }
        }
        "http" => {
            let url = rc.url.clone().ok_or_else(|| {
                err(
                    "url",
                    "missing".into(),
                    "set `url = \"http://127.0.0.1:PORT/path\"`",
                )
            })?;
            if !url.starts_with("http://") {
                return Err(err(
                    "url",
                    format!("`{url}` is not an http:// URL"),
                    "use a plain http:// URL on the node (https is not supported by this check)",
                ));
            }
            let expect_status = match rc.expect_status {
                None => 200,
                Some(n) if (100..=599).contains(&n) => n as u16,
                Some(n) => {
                    return Err(err(
                        "expect_status",
                        format!("{n} is not an HTTP status"),
                        "use e.g. 200",
                    ))
                }
            };
            CheckKind::Http { url, expect_status }
        }
        "https" => validate_https(&rc, &err)?,
        "webdav" => validate_webdav(&rc, &err)?,
        "command" => {
            let command = rc.command.clone().unwrap_or_default();
            if command.is_empty() || !command[0].starts_with('/') {
                return Err(err(
                    "command",
                    "missing, or the program is not an absolute path".into(),
                    "write the argv as a list, e.g. command = [\"/usr/lib/nagios/plugins/check_procs\", \"-C\", \"globus-gridftp-server\"]",
                ));
            }
            let user = match &rc.user {
                None => None,
                Some(u) => match nix::unistd::User::from_name(u) {
                    Ok(Some(_)) if !can_change_user() => {
                        return Err(err(
                            "user",
                            format!(
                                "running the check as `{u}` needs CAP_SETUID and CAP_SETGID, \
                                 which this process lacks (the shipped lvs-node.service drops \
                                 them and filters the @setuid system calls)"
                            ),
                            "remove `user` (the check then runs as root inside the unit's sandbox), \
                             or allow it in a drop-in (`systemctl edit lvs-node`): [Service] \
                             CapabilityBoundingSet=CAP_SETUID CAP_SETGID and SystemCallFilter=@setuid \
                             (docs/packaging.md)",
                        ))
                    }
                    Ok(Some(_)) => Some(u.clone()),
                    _ => {
                        return Err(err(
                            "user",
                            format!("no user `{u}` on this host"),
                            "name an existing account, e.g. user = \"nobody\", or remove `user` to run as root",
                        ))
                    }
                },
            };
            CheckKind::Command { command, user }
        }
        "filesystem" => {
            let path = PathBuf::from(rc.path.clone().ok_or_else(|| {
                err(
                    "path",
                    "missing".into(),
                    "set `path` to the mount point, e.g. \"/mnt/shared\"",
                )
            })?);
            if !path.is_absolute() {
                return Err(err(
                    "path",
                    format!("`{}` is not absolute", path.display()),
                    "use the absolute mount point",
                ));
            }
            let min_free = match &rc.min_free {
                None => MinFree::Percent(1.0),
                Some(s) => parse_min_free(s).map_err(|p| {
                    err(
                        "min_free",
                        p,
                        "write a percentage (\"5%\") or a size (\"10G\", \"500M\")",
                    )
                })?,
            };
            CheckKind::Filesystem {
                path,
                min_free,
                writable: rc.writable.unwrap_or(true),
            }
        }
        "certificate" => {
            let cert = PathBuf::from(
                rc.cert
                    .clone()
                    .unwrap_or_else(|| "/etc/grid-security/hostcert.pem".into()),
            );
            let min_days = match rc.min_days {
                None => 7,
                Some(n) if (0..=3650).contains(&n) => n as u32,
                Some(n) => {
                    return Err(err(
                        "min_days",
                        format!("{n} is out of range"),
                        "use 0 to 3650",
                    ))
                }
            };
            let hostnames = rc
                .hostnames
                .clone()
                .unwrap_or_else(|| vips.iter().filter_map(|v| v.hostname.clone()).collect());
            CheckKind::Certificate {
                cert,
                min_days,
                hostnames,
                tpc_client: rc.tpc_client.unwrap_or(false),
            }
        }
        _ => unreachable!("kind validated above"),
    };
    Ok(CheckSpec {
        name,
        interval,
        timeout,
        rise,
        fall,
        kind,
    })
}

/// The `https` check's keys: `target` must be an https:// URL, files absolute, a client
/// certificate comes with its key, `sni` is a DNS name.
/// Whether this process may switch a child to another user: CAP_SETUID (7) and CAP_SETGID
/// (6) in its effective set. Unknown (no /proc) counts as yes: the spawn then says why.
fn can_change_user() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_none_or(|eff| eff & (1 << 7) != 0 && eff & (1 << 6) != 0)
}

fn validate_https(
    rc: &RawCheck,
    err: &dyn Fn(&str, String, &str) -> ConfigError,
) -> Result<CheckKind, ConfigError> {
    let target = rc.target.clone().ok_or_else(|| {
        err(
            "target",
            "missing".into(),
            "set `target = \"https://127.0.0.1:8443/\"`",
        )
    })?;
    if !target.starts_with("https://") {
        return Err(err(
            "target",
            format!("`{target}` is not an https:// URL"),
            "write e.g. \"https://127.0.0.1:8443/\" (use kind = \"http\" with `url` for plain HTTP)",
        ));
    }
    crate::http::host_port(&target)
        .map_err(|p| err("target", p, "write e.g. \"https://127.0.0.1:8443/path\""))?;
    let expect_status = match rc.expect_status {
        None => None,
        Some(n) if (100..=599).contains(&n) => Some(n as u16),
        Some(n) => {
            return Err(err(
                "expect_status",
                format!("{n} is not an HTTP status"),
                "use e.g. 200, or leave it out to accept any 2xx",
            ))
        }
    };
    let (ca_file, client_cert, client_key, sni) = tls_keys(rc, err)?;
    Ok(CheckKind::Https {
        target,
        expect_status,
        ca_file,
        client_cert,
        client_key,
        sni,
    })
}

/// The `webdav` check's keys: `target` is an http:// or https:// URL whose path is the one
/// PROPFIND asks for; the TLS keys as for `https`, and only with https.
fn validate_webdav(
    rc: &RawCheck,
    err: &dyn Fn(&str, String, &str) -> ConfigError,
) -> Result<CheckKind, ConfigError> {
    let example =
        "write e.g. \"https://127.0.0.1:8443/data/lvs-node-probe\" (the path PROPFIND asks for)";
    let target = rc
        .target
        .clone()
        .ok_or_else(|| err("target", "missing".into(), example))?;
    if !target.starts_with("https://") && !target.starts_with("http://") {
        return Err(err(
            "target",
            format!("`{target}` is not an http:// or https:// URL"),
            example,
        ));
    }
    crate::http::host_port(&target).map_err(|p| err("target", p, example))?;
    if target.starts_with("http://") {
        let tls = [
            ("ca_file", rc.ca_file.is_some()),
            ("client_cert", rc.client_cert.is_some()),
            ("client_key", rc.client_key.is_some()),
            ("sni", rc.sni.is_some()),
        ];
        if let Some((k, _)) = tls.iter().find(|(_, g)| *g) {
            return Err(err(
                k,
                format!("`{k}` needs an https:// target"),
                "use an https:// target, or remove it",
            ));
        }
    }
    let expect_status = match rc.expect_status {
        None => 207,
        Some(n) if (100..=599).contains(&n) => n as u16,
        Some(n) => {
            return Err(err(
                "expect_status",
                format!("{n} is not an HTTP status"),
                "use e.g. 207 (Multi-Status, the default)",
            ))
        }
    };
    let (ca_file, client_cert, client_key, sni) = tls_keys(rc, err)?;
    Ok(CheckKind::Webdav {
        target,
        expect_status,
        ca_file,
        client_cert,
        client_key,
        sni,
    })
}

type TlsKeys = (
    Option<PathBuf>,
    Option<PathBuf>,
    Option<PathBuf>,
    Option<String>,
);

/// `ca_file`, `client_cert` + `client_key` (absolute, both or neither) and `sni` (a DNS
/// name), as the `https` and `webdav` checks take them.
fn tls_keys(
    rc: &RawCheck,
    err: &dyn Fn(&str, String, &str) -> ConfigError,
) -> Result<TlsKeys, ConfigError> {
    let file = |key: &str, v: &Option<String>| -> Result<Option<PathBuf>, ConfigError> {
        match v {
            None => Ok(None),
            Some(p) if Path::new(p).is_absolute() => Ok(Some(PathBuf::from(p))),
            Some(p) => Err(err(
                key,
                format!("`{p}` is not an absolute path"),
                "use an absolute path to a PEM file",
            )),
        }
    };
    let ca_file = file("ca_file", &rc.ca_file)?;
    let client_cert = file("client_cert", &rc.client_cert)?;
    let client_key = file("client_key", &rc.client_key)?;
    match (&client_cert, &client_key) {
        (Some(_), None) => {
            return Err(err(
                "client_key",
                "missing: client_cert is set".into(),
                "set client_key to the certificate's private key (PEM)",
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "client_cert",
                "missing: client_key is set".into(),
                "set client_cert to the client certificate (PEM)",
            ))
        }
        _ => {}
    }
    if let Some(sni) = &rc.sni {
        let ok = !sni.is_empty()
            && sni.len() <= 253
            && sni
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !ok {
            return Err(err(
                "sni",
                format!("`{sni}` is not a DNS name"),
                "write the name the server certificate carries, e.g. \"gridftp.example.org\"",
            ));
        }
    }
    Ok((ca_file, client_cert, client_key, rc.sni.clone()))
}

fn parse_min_free(s: &str) -> Result<MinFree, String> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        let v: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a percentage"))?;
        if !(0.0..=100.0).contains(&v) {
            return Err(format!("{v}% is not between 0 and 100"));
        }
        return Ok(MinFree::Percent(v));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        u => return Err(format!("unknown size unit `{u}`")),
    };
    Ok(MinFree::Bytes(n.saturating_mul(mult)))
}
