//! `lvs-node run` settings: `[daemon]`, `[[check]]`, `[report]`, `[weight]`.
//!
//! Every key is validated here, before the agent touches the host, and every error names
//! the key (`check[2].timeout`) and the fix.

use super::Vip;
use crate::error::ConfigError;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONTROL_SOCKET: &str = "/run/lvs-node/control.sock";

/// `[daemon] start_timeout` unless set: well inside the unit's `TimeoutStartSec=90s`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest `[daemon] start_timeout`: systemd's start timeout must stay above it.
pub const MAX_START_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub on_stop: Option<String>,
    pub recheck_interval: Option<String>,
    pub control_socket: Option<String>,
    pub manage_dataplane: Option<bool>,
    pub start_timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    // gridftp, tcp, xrootd; https (a URL)
    pub target: Option<String>,
    // http
    pub url: Option<String>,
    // http, https
    pub expect_status: Option<i64>,
    // https
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub http: Option<String>,
    pub agent_check: Option<String>,
    pub http6: Option<String>,
    pub agent_check6: Option<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    pub max_connections: Option<i64>,
    pub max_per_source: Option<i64>,
    pub public_health: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWeight {
    pub base: Option<i64>,
    pub min: Option<i64>,
    pub sessions_per_core: Option<f64>,
    pub load_per_core: Option<f64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    #[serde(default)]
    pub peers: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub max_age: Option<String>,
}

pub struct RawSections {
    pub daemon: RawDaemon,
    pub checks: Vec<RawCheck>,
    pub report: RawReport,
    pub weight: RawWeight,
    pub pool: RawPool,
}

/// What SIGTERM does to the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStop {
    /// Leave VIPs and ARP suppression in place: restarting the agent never cuts a transfer.
    #[default]
    Keep,
    /// Run `down`.
    Down,
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
    },
    Xrootd {
        target: String,
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

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub http: Option<SocketAddr>,
    pub agent_check: Option<SocketAddr>,
    /// A second listener for `/health`, `/status`, ... on the node's IPv6 address, so that
    /// dual-stack directors and peers reach the same endpoint over either family.
    pub http6: Option<SocketAddr>,
    /// A second agent-check listener on the node's IPv6 address.
    pub agent_check6: Option<SocketAddr>,
    /// Director addresses allowed to connect; empty = anyone.
    pub allow: Vec<IpAddr>,
    pub max_connections: usize,
    /// Connections one source address may hold at once, per endpoint.
    pub max_per_source: usize,
    /// With `allow` set: other addresses may still read `/health`, `/metrics` and the
    /// agent-check line (not `/status`), from the slots the directors do not reserve.
    pub public_health: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weight {
    /// Weight of an idle node (1..=253: keepalived's misc_dynamic caps at 255 - 2).
    pub base: u32,
    /// Floor while up, so a busy node is never mistaken for a drained one.
    pub min: u32,
    /// Established VIP sessions per core at which the weight reaches `min`; 0 = ignore.
    pub sessions_per_core: f64,
    /// 1-minute load average per core at which the weight reaches `min`; 0 = ignore.
    pub load_per_core: f64,
}

impl Default for Weight {
    fn default() -> Self {
        Weight {
            base: 100,
            min: 1,
            sessions_per_core: 0.0,
            load_per_core: 0.0,
        }
    }
}

/// `[pool]`: the other nodes' report endpoints, polled by `lvs-node run` (for the redirector
/// and the pool page) and read by `lvs-node pool status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Base URLs such as `http://192.0.2.12:8080` (no path). The node's own `[report] http`
    /// may be listed too, so every node can carry the same list.
    pub peers: Vec<String>,
    /// Time between two polls of a peer.
    pub interval: Duration,
    /// Per-request timeout; at most the interval.
    pub timeout: Duration,
    /// A peer's answer older than this counts as down (never used stale).
    pub max_age: Duration,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            peers: Vec::new(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            max_age: Duration::from_secs(6),
        }
    }
}

/// Checks one peer URL: `http://IP:PORT` or `http://NAME:PORT`, nothing after the port.
/// Returns the normalised base URL (no trailing slash).
pub fn parse_peer(url: &str) -> Result<String, String> {
    let base = url.trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(format!(
            "`{url}` is not an http:// URL (the report endpoint serves plain HTTP)"
        ));
    }
    let (_, port) = crate::http::host_port(base)?;
    let rest = &base["http://".len()..];
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(format!("`{url}` has a path, query or user part"));
    }
    if !rest.ends_with(&format!(":{port}")) {
        return Err(format!("`{url}` has no port"));
    }
    Ok(base.to_string())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub on_stop: OnStop,
    pub recheck_interval: Duration,
    pub control_socket: PathBuf,
    /// false: VIPs are managed elsewhere; the agent only observes and reports them.
    pub manage_dataplane: bool,
    /// How long `run` retries the first convergence before it gives up (exit 4, so
    /// systemd fails the unit and nothing ordered after it starts). READY=1 is sent only
    /// once the data plane has converged.
    pub start_timeout: Duration,
    pub checks: Vec<CheckSpec>,
    pub report: Report,
    pub weight: Weight,
    pub pool: Pool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            on_stop: OnStop::Keep,
            recheck_interval: Duration::from_secs(2),
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            manage_dataplane: true,
            start_timeout: DEFAULT_START_TIMEOUT,
            checks: Vec::new(),
            report: Report {
                max_connections: 1024,
                max_per_source: 16,
                ..Report::default()
            },
            weight: Weight::default(),
            pool: Pool::default(),
        }
    }
}

const KINDS: &str = "gridftp, tcp, http, https, command, filesystem, certificate, xrootd";

pub fn validate(file: &Path, raw: RawSections, vips: &[Vip]) -> Result<Settings, ConfigError> {
    let err = |key: &str, problem: String, fix: &str| ConfigError::new(file, key, problem, fix);
    let dur = |key: &str, v: &Option<String>, default: Duration| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => {
                let d = crate::duration::parse(s).map_err(|p| {
                    err(
                        key,
                        p,
                        "write a duration such as \"500ms\", \"2s\" or \"1m\"",
                    )
                })?;
                if d.is_zero() {
                    return Err(err(key, "must be more than zero".into(), "use e.g. \"1s\""));
                }
                Ok(d)
            }
        }
    };
    let mut s = Settings::default();

    let d = raw.daemon;
    s.on_stop = match d.on_stop.as_deref() {
        None | Some("keep") => OnStop::Keep,
        Some("down") => OnStop::Down,
        Some(o) => {
            return Err(err(
                "daemon.on_stop",
                format!("`{o}` is not a stop action"),
                "use \"keep\" (leave VIPs up so transfers continue) or \"down\"",
            ))
        }
    };
    s.recheck_interval = dur(
        "daemon.recheck_interval",
        &d.recheck_interval,
        s.recheck_interval,
    )?;
    if let Some(p) = d.control_socket {
        let p = PathBuf::from(p);
        if !p.is_absolute() {
            return Err(err(
                "daemon.control_socket",
                format!("`{}` is not an absolute path", p.display()),
                "use an absolute path such as /run/lvs-node/control.sock",
            ));
        }
        s.control_socket = p;
    }
    s.manage_dataplane = d.manage_dataplane.unwrap_or(true);
    s.start_timeout = dur("daemon.start_timeout", &d.start_timeout, s.start_timeout)?;
    if s.start_timeout > MAX_START_TIMEOUT {
        return Err(err(
            "daemon.start_timeout",
            format!(
                "{} is more than an hour",
                crate::duration::format(s.start_timeout)
            ),
            "use e.g. \"30s\" (the default), and keep the unit's TimeoutStartSec above it",
        ));
    }

    let mut names = HashSet::new();
    for (i, rc) in raw.checks.into_iter().enumerate() {
        let spec = validate_check(file, i, rc, vips)?;
        if !names.insert(spec.name.clone()) {
            return Err(err(
                &format!("check[{i}].name"),
                format!("the name `{}` is used twice", spec.name),
                "give every [[check]] a unique `name`",
            ));
        }
        s.checks.push(spec);
    }
    if names.contains("dataplane") {
        return Err(err(
            "check.name",
            "`dataplane` is the built-in data plane check".into(),
            "choose another name",
        ));
    }

    let r = raw.report;
    let bind = |key: &str, v: Option<String>| -> Result<Option<SocketAddr>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let a: SocketAddr = v.parse().map_err(|_| {
            err(
                key,
                format!("`{v}` is not IP:PORT"),
                "write the real IP and a port, e.g. \"192.0.2.11:8080\"",
            )
        })?;
        if a.ip().is_unspecified() {
            return Err(err(
                key,
                format!("{a} would also listen on the VIPs"),
                "bind the node's real IP, e.g. \"192.0.2.11:8080\"",
            ));
        }
        if vips.iter().any(|vip| vip.address == a.ip()) {
            return Err(err(
                key,
                format!("{} is a VIP: directors would reach any node", a.ip()),
                "bind the node's real IP instead",
            ));
        }
        if a.port() == 0 {
            return Err(err(key, "port 0".into(), "choose a fixed port, e.g. 8080"));
        }
        Ok(Some(a))
    };
    s.report.http = bind("report.http", r.http)?;
    s.report.agent_check = bind("report.agent_check", r.agent_check)?;
    let bind6 = |key: &str, v: Option<String>| -> Result<Option<SocketAddr>, ConfigError> {
        let a = bind(key, v)?;
        if let Some(a) = a.filter(|a| !a.is_ipv6()) {
            return Err(err(
                key,
                format!("{a} is not an IPv6 address"),
                "write the node's IPv6 address in brackets, e.g. \"[2001:db8::11]:8080\" (IPv4 goes in the key without 6)",
            ));
        }
        Ok(a)
    };
    s.report.http6 = bind6("report.http6", r.http6)?;
    s.report.agent_check6 = bind6("report.agent_check6", r.agent_check6)?;
    let all = [
        ("report.http", s.report.http),
        ("report.agent_check", s.report.agent_check),
        ("report.http6", s.report.http6),
        ("report.agent_check6", s.report.agent_check6),
    ];
    for (i, (k1, a)) in all.iter().enumerate() {
        for (k2, b) in &all[i + 1..] {
            if let (Some(a), Some(b)) = (a, b) {
                if a == b {
                    return Err(err(
                        k2,
                        format!("{b} is also {k1}"),
                        "give each report endpoint its own address or port",
                    ));
                }
            }
        }
    }
    for (i, a) in r.allow.iter().enumerate() {
        let ip: IpAddr = a.parse().map_err(|_| {
            err(
                &format!("report.allow[{i}]"),
                format!("`{a}` is not an IP address"),
                "list the directors' source addresses, e.g. allow = [\"192.0.2.2\"]",
            )
        })?;
        s.report.allow.push(ip);
    }
    if let Some(m) = r.max_connections {
        if !(1..=65536).contains(&m) {
            return Err(err(
                "report.max_connections",
                format!("{m} is out of range"),
                "use 1 to 65536 (default 1024)",
            ));
        }
        s.report.max_connections = m as usize;
    }
    if let Some(m) = r.max_per_source {
        if m < 1 || m as usize > s.report.max_connections {
            return Err(err(
                "report.max_per_source",
                format!(
                    "{m} is not between 1 and report.max_connections ({})",
                    s.report.max_connections
                ),
                "use a small number such as 16 (default): a director needs one or two",
            ));
        }
        s.report.max_per_source = m as usize;
    }
    s.report.max_per_source = s.report.max_per_source.min(s.report.max_connections);
    s.report.public_health = r.public_health.unwrap_or(false);
    if s.report.public_health && s.report.allow.is_empty() {
        return Err(err(
            "report.public_health",
            "has no effect without report.allow (every address is already let in)".into(),
            "list the directors in report.allow, or remove public_health",
        ));
    }

    let p = raw.pool;
    for (i, peer) in p.peers.iter().enumerate() {
        let key = format!("pool.peers[{i}]");
        let base = parse_peer(peer).map_err(|e| {
            err(
                &key,
                e,
                "list the other nodes' [report] http endpoints, e.g. peers = [\"http://192.0.2.12:8080\"]",
            )
        })?;
        if s.pool.peers.contains(&base) {
            return Err(err(
                &key,
                format!("`{base}` is listed twice"),
                "list every node once",
            ));
        }
        s.pool.peers.push(base);
    }
    if s.pool.peers.len() > 256 {
        return Err(err(
            "pool.peers",
            format!("{} peers", s.pool.peers.len()),
            "list at most 256 nodes",
        ));
    }
    s.pool.interval = dur("pool.interval", &p.interval, s.pool.interval)?;
    if s.pool.interval < Duration::from_millis(200) || s.pool.interval > Duration::from_secs(300) {
        return Err(err(
            "pool.interval",
            format!(
                "{} is out of range",
                crate::duration::format(s.pool.interval)
            ),
            "use 200ms to 5m (default 2s)",
        ));
    }
    s.pool.timeout = dur(
        "pool.timeout",
        &p.timeout,
        Duration::from_secs(1).min(s.pool.interval),
    )?;
    if s.pool.timeout > s.pool.interval {
        return Err(err(
            "pool.timeout",
            format!(
                "{} is longer than pool.interval ({})",
                crate::duration::format(s.pool.timeout),
                crate::duration::format(s.pool.interval)
            ),
            "make the timeout at most the interval",
        ));
    }
    s.pool.max_age = dur("pool.max_age", &p.max_age, s.pool.interval * 3)?;
    if s.pool.max_age < s.pool.interval + s.pool.timeout {
        return Err(err(
            "pool.max_age",
            format!(
                "{} is shorter than interval + timeout",
                crate::duration::format(s.pool.max_age)
            ),
            "use at least pool.interval + pool.timeout (default 3 x interval)",
        ));
    }

    let w = raw.weight;
    if let Some(b) = w.base {
        if !(1..=253).contains(&b) {
            return Err(err(
                "weight.base",
                format!("{b} is out of range"),
                "use 1 to 253 (keepalived's MISC_CHECK reports at most 253); default 100",
            ));
        }
        s.weight.base = b as u32;
    }
    if let Some(m) = w.min {
        if m < 1 || m as u32 > s.weight.base {
            return Err(err(
                "weight.min",
                format!("{m} is not between 1 and weight.base ({})", s.weight.base),
                "use a small floor such as 1: weight 0 means drained",
            ));
        }
        s.weight.min = m as u32;
    }
    for (key, v, slot) in [
        (
            "weight.sessions_per_core",
            w.sessions_per_core,
            &mut s.weight.sessions_per_core,
        ),
        (
            "weight.load_per_core",
            w.load_per_core,
            &mut s.weight.load_per_core,
        ),
    ] {
        if let Some(v) = v {
            if !v.is_finite() || v < 0.0 {
                return Err(err(
                    key,
                    format!("{v} must be zero or positive"),
                    "use e.g. 50 (or 0 to ignore this load signal)",
                ));
            }
            *slot = v;
        }
    }
    Ok(s)
}

fn validate_check(
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
    ]
    .into_iter()
    .filter(|(_, g)| *g)
    .map(|(n, _)| n)
    .collect();
    let allowed: &[&str] = match kind.as_str() {
        "gridftp" | "tcp" | "xrootd" => &["target"],
        "http" => &["url", "expect_status"],
        "https" => &[
            "target",
            "expect_status",
            "ca_file",
            "client_cert",
            "client_key",
            "sni",
        ],
        "command" => &["command", "user"],
        "filesystem" => &["path", "min_free", "writable"],
        "certificate" => &["cert", "min_days", "hostnames"],
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
        "xrootd" => CheckKind::Xrootd {
            target: target("127.0.0.1:1094")?,
        },
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
    Ok(CheckKind::Https {
        target,
        expect_status,
        ca_file,
        client_cert,
        client_key,
        sni: rc.sni.clone(),
    })
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

#[cfg(test)]
mod tests {
    use crate::config::NodeConfig;
    use std::path::Path;

    const BASE: &str = "interface = \"eth0\"\nreal_ip = \"192.0.2.11\"\n[[vip]]\naddress = \"192.0.2.100\"\nports = [2811]\nhostname = \"gridftp.example.org\"\n";

    fn parse(extra: &str) -> Result<NodeConfig, crate::ConfigError> {
        NodeConfig::parse(
            Path::new("/etc/lvs-node/node.toml"),
            &format!("{BASE}{extra}"),
        )
    }

    #[test]
    fn full_daemon_config() {
        let c = parse(
            "[daemon]\non_stop = \"down\"\nrecheck_interval = \"500ms\"\n\
             [[check]]\nkind = \"gridftp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 2\nfall = 1\n\
             [[check]]\nname = \"shared\"\nkind = \"filesystem\"\npath = \"/mnt\"\nmin_free = \"10G\"\n\
             [[check]]\nkind = \"certificate\"\n\
             [report]\nhttp = \"192.0.2.11:8080\"\nagent_check = \"192.0.2.11:8081\"\nallow = [\"192.0.2.2\"]\n\
             [weight]\nbase = 100\nsessions_per_core = 50\nload_per_core = 2.0\n",
        )
        .unwrap();
        let d = &c.daemon;
        assert_eq!(d.on_stop, super::OnStop::Down);
        assert_eq!(d.checks.len(), 3);
        assert_eq!(d.checks[0].name, "gridftp");
        assert_eq!(d.checks[0].fall, 1);
        match &d.checks[2].kind {
            super::CheckKind::Certificate { hostnames, .. } => {
                assert_eq!(hostnames, &vec!["gridftp.example.org".to_string()])
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(d.report.allow.len(), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[[check]]\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\n[[check]]\nkind = \"gridftp\"\ninterval = \"1s\"\ntimeout = \"2s\"\n").unwrap_err();
        assert_eq!(e.key, "check[1].timeout");
        let e = parse("[[check]]\nkind = \"tcp\"\ntarget = \"x:1\"\nexpect_status = 200\n")
            .unwrap_err();
        assert_eq!(e.key, "check[0].expect_status");
        let e = parse("[[check]]\nkind = \"smtp\"\n").unwrap_err();
        assert!(e.fix.contains("gridftp"), "{e}");
        let e = parse("[report]\nhttp = \"192.0.2.100:80\"\n").unwrap_err();
        assert_eq!(e.key, "report.http");
        let e = parse("[report]\nhttp = \"0.0.0.0:80\"\n").unwrap_err();
        assert_eq!(e.key, "report.http");
        let e = parse("[weight]\nbase = 300\n").unwrap_err();
        assert_eq!(e.key, "weight.base");
        let e = parse("[daemon]\non_stop = \"halt\"\n").unwrap_err();
        assert_eq!(e.key, "daemon.on_stop");
        let e = parse("[daemon]\nstart_timeout = \"0s\"\n").unwrap_err();
        assert_eq!(e.key, "daemon.start_timeout");
        let e = parse("[daemon]\nstart_timeout = \"2h\"\n").unwrap_err();
        assert_eq!(e.key, "daemon.start_timeout");
        let e = parse("[daemon]\nstart_timeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.key, "daemon.start_timeout");
        let c = parse("[daemon]\nstart_timeout = \"5s\"\n").unwrap();
        assert_eq!(c.daemon.start_timeout, std::time::Duration::from_secs(5));
        assert_eq!(
            parse("").unwrap().daemon.start_timeout,
            super::DEFAULT_START_TIMEOUT
        );
        let e =
            parse("[[check]]\nkind = \"gridftp\"\n[[check]]\nkind = \"gridftp\"\n").unwrap_err();
        assert_eq!(e.key, "check[1].name");
        let e = parse("[[check]]\nkind = \"gridftp\"\ninterval = \"5\"\n").unwrap_err();
        assert_eq!(e.key, "check[0].interval");
        let e = parse("[daemon]\nbogus = 1\n").unwrap_err();
        assert!(e.key.starts_with("line"), "{e}");
    }

    #[test]
    fn huge_durations_are_rejected_with_the_key() {
        let e = parse("[daemon]\nrecheck_interval = \"213503982334601d\"\n").unwrap_err();
        assert_eq!(e.key, "daemon.recheck_interval");
        assert!(e.to_string().contains("too large"), "{e}");
        let e = parse("[[check]]\nkind = \"gridftp\"\ninterval = \"99999999999999999999s\"\n")
            .unwrap_err();
        assert_eq!(e.key, "check[0].interval");
        let e = parse("[[check]]\nkind = \"gridftp\"\ninterval = \"36501d\"\ntimeout = \"1s\"\n")
            .unwrap_err();
        assert_eq!(e.key, "check[0].interval");
    }

    #[test]
    fn report_limits_and_command_user() {
        let c = parse(
            "[[check]]\nkind = \"command\"\ncommand = [\"/bin/true\"]\nuser = \"nobody\"\n\
             [report]\nhttp = \"192.0.2.11:8080\"\nallow = [\"192.0.2.2\"]\npublic_health = true\nmax_per_source = 4\n",
        )
        .unwrap();
        let r = &c.daemon.report;
        assert_eq!((r.max_per_source, r.public_health), (4, true));
        match &c.daemon.checks[0].kind {
            super::CheckKind::Command { user, .. } => assert_eq!(user.as_deref(), Some("nobody")),
            k => panic!("{k:?}"),
        }
        let d = parse("").unwrap();
        assert_eq!(d.daemon.report.max_per_source, 16);
        assert!(!d.daemon.report.public_health);
        let e = parse("[report]\npublic_health = true\n").unwrap_err();
        assert_eq!(e.key, "report.public_health");
        let e = parse("[report]\nmax_connections = 8\nmax_per_source = 9\n").unwrap_err();
        assert_eq!(e.key, "report.max_per_source");
        let e = parse(
            "[[check]]\nkind = \"command\"\ncommand = [\"/bin/true\"]\nuser = \"no-such-user-x\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "check[0].user");
        let e =
            parse("[[check]]\nkind = \"tcp\"\ntarget = \"x:1\"\nuser = \"nobody\"\n").unwrap_err();
        assert_eq!(e.key, "check[0].user");
    }

    #[test]
    fn dual_stack_report_endpoints() {
        let c = parse(
            "[report]\nhttp = \"192.0.2.11:8080\"\nhttp6 = \"[2001:db8::11]:8080\"\n\
             agent_check = \"192.0.2.11:8081\"\nagent_check6 = \"[2001:db8::11]:8081\"\n",
        )
        .unwrap();
        let r = &c.daemon.report;
        assert_eq!(r.http6, Some("[2001:db8::11]:8080".parse().unwrap()));
        assert_eq!(r.agent_check6, Some("[2001:db8::11]:8081".parse().unwrap()));
        let e = parse("[report]\nhttp6 = \"192.0.2.11:8080\"\n").unwrap_err();
        assert_eq!(e.key, "report.http6");
        assert!(e.to_string().contains("not an IPv6 address"), "{e}");
        let e = parse("[report]\nagent_check6 = \"[::]:8081\"\n").unwrap_err();
        assert_eq!(e.key, "report.agent_check6");
        let e = parse(
            "[report]\nhttp6 = \"[2001:db8::11]:8080\"\nagent_check6 = \"[2001:db8::11]:8080\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "report.agent_check6");
    }

    #[test]
    fn https_check_keys() {
        let c = parse(
            "[[check]]\nkind = \"https\"\ntarget = \"https://127.0.0.1:8443/ping\"\nca_file = \"/etc/ca.pem\"\n\
             client_cert = \"/etc/c.pem\"\nclient_key = \"/etc/k.pem\"\nsni = \"gridftp.example.org\"\n",
        )
        .unwrap();
        match &c.daemon.checks[0].kind {
            super::CheckKind::Https {
                expect_status, sni, ..
            } => {
                assert_eq!(*expect_status, None);
                assert_eq!(sni.as_deref(), Some("gridftp.example.org"));
            }
            k => panic!("{k:?}"),
        }
        let key = |extra: &str| {
            parse(&format!("[[check]]\nkind = \"https\"\n{extra}"))
                .unwrap_err()
                .key
        };
        assert_eq!(key(""), "check[0].target");
        assert_eq!(key("target = \"http://h:1/\"\n"), "check[0].target");
        assert_eq!(
            key("target = \"https://h:1/\"\nclient_cert = \"/c\"\n"),
            "check[0].client_key"
        );
        assert_eq!(
            key("target = \"https://h:1/\"\nca_file = \"ca.pem\"\n"),
            "check[0].ca_file"
        );
        assert_eq!(
            key("target = \"https://h:1/\"\nsni = \"a b\"\n"),
            "check[0].sni"
        );
        assert_eq!(
            key("target = \"https://h:1/\"\nexpect_status = 99\n"),
            "check[0].expect_status"
        );
        assert_eq!(
            key("target = \"https://h:1/\"\nurl = \"x\"\n"),
            "check[0].url"
        );
    }

    #[test]
    fn pool_keys() {
        let c = parse(
            "[pool]\npeers = [\"http://192.0.2.12:8080/\", \"http://[2001:db8::12]:8080\"]\ninterval = \"1s\"\n",
        )
        .unwrap();
        let p = &c.daemon.pool;
        assert_eq!(
            p.peers,
            vec!["http://192.0.2.12:8080", "http://[2001:db8::12]:8080"]
        );
        assert_eq!(p.max_age, std::time::Duration::from_secs(3));
        let key = |t: &str| parse(&format!("[pool]\n{t}")).unwrap_err().key;
        assert_eq!(key("peers = [\"https://h:1\"]"), "pool.peers[0]");
        assert_eq!(key("peers = [\"http://h\"]"), "pool.peers[0]");
        assert_eq!(key("peers = [\"http://h:1/status\"]"), "pool.peers[0]");
        assert_eq!(
            key("peers = [\"http://h:1\", \"http://h:1/\"]"),
            "pool.peers[1]"
        );
        assert_eq!(key("interval = \"1s\"\ntimeout = \"2s\""), "pool.timeout");
        assert_eq!(key("max_age = \"1s\""), "pool.max_age");
        assert_eq!(key("interval = \"10ms\""), "pool.interval");
        assert!(key("bogus = 1").starts_with("line"));
    }
}
