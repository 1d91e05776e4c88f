//! `lvs-node run` settings: `[daemon]`, `[report]`, `[weight]`, `[pool]`, and the list of
//! `[[check]]` tables (each one validated in `check`).
//!
//! Every key is validated here, before the agent touches the host, and every error names
//! the key (`check[2].timeout`) and the fix.

use super::check::{validate_check, CheckSpec, RawCheck};
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
    pub https: Option<String>,
    pub https6: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub client_ca: Option<String>,
    #[serde(default)]
    pub allow_clients: Vec<String>,
    pub macaroon_secret: Option<String>,
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
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(rename = "self")]
    pub self_url: Option<String>,
    pub depool_threshold: Option<f64>,
    pub min_serving: Option<i64>,
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
    /// The same endpoint over TLS, with the host certificate `tls` (for pool reads that
    /// verify who answers). Same gate (`allow`, caps, timeouts) as `http`.
    pub https: Option<SocketAddr>,
    pub https6: Option<SocketAddr>,
    /// The certificate and key of `https`/`https6` (the node's host certificate).
    pub tls: Option<super::tls::Pair>,
    /// CA(s) of the client certificates `https` asks for. When set, `/status` and `/pool`
    /// go to clients whose certificate verifies against it and names one of
    /// `allow_clients` (any name when that is empty), on `https` only: the address no
    /// longer decides (it still decides who may connect, through `allow`).
    pub client_ca: Option<PathBuf>,
    /// Names (a subject CN or a DNS name of the certificate) that count as directors and
    /// peers for `/status` and `/pool` with `client_ca`.
    pub allow_clients: Vec<String>,
    /// XrdMacaroons' secret (`macaroons.secretkey`): `/status` carries a fingerprint of it
    /// (never the secret) so the pool can tell nodes whose macaroons do not verify on each
    /// other.
    pub macaroon_secret: Option<PathBuf>,
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
    /// CA bundle or directory that `https://` peers' certificates must verify against
    /// (None: the system's roots).
    pub ca: Option<PathBuf>,
    /// The client certificate and key shown to `https://` peers that ask for one.
    pub client: Option<super::tls::Pair>,
    /// This node's own entry in `peers` (read from its health state, not over the
    /// network), e.g. `https://gridftp-n1.example.org:8443`; None: `http://` + `[report]
    /// http`.
    pub self_url: Option<String>,
    /// The share of the pool (0 to 1) that a failure of `shared` checks may not take out:
    /// while fewer nodes than `ceil(depool_threshold x nodes)` serve, nodes whose only
    /// failing checks are shared keep serving ("held"), chosen by URL order. 0: never hold.
    pub depool_threshold: f64,
    /// `pool status` and `nagios` warn when fewer nodes than this serve.
    pub min_serving: u32,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            peers: Vec::new(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            max_age: Duration::from_secs(6),
            ca: None,
            client: None,
            self_url: None,
            depool_threshold: 0.5,
            min_serving: 1,
        }
    }
}

/// The most polls a node makes per second by default, and so about the most `/status`
/// requests it answers from its peers: the full mesh grows with the square of the pool,
/// so its per-node cost is kept flat by polling a large pool less often.
pub const POOL_POLLS_PER_SECOND: u32 = 10;

/// `[pool] interval` when the config gives none: 2 s, or one poll of each of `peers` at
/// [`POOL_POLLS_PER_SECOND`] when that is longer (5 s for 50 nodes, 25.6 s for 256).
/// Consul's anti-entropy sync scales with the cluster's size for the same reason.
pub fn default_pool_interval(peers: usize) -> Duration {
    let per_peer = Duration::from_secs(1) / POOL_POLLS_PER_SECOND;
    Duration::from_secs(2).max(per_peer * peers as u32)
}

/// Checks one peer URL: `http://IP:PORT`, `http://NAME:PORT` or `https://NAME:PORT` (a
/// report `https` endpoint, whose certificate must name NAME), nothing after the port.
/// Returns the normalised base URL (no trailing slash).
pub fn parse_peer(url: &str) -> Result<String, String> {
    let base = url.trim_end_matches('/');
    let Some(rest) = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
    else {
        return Err(format!(
            "`{url}` is not an http:// or https:// URL of a report endpoint"
        ));
    };
    let (_, port) = crate::http::host_port(base)?;
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

    s.report.https = bind("report.https", r.https)?;
    s.report.https6 = bind6("report.https6", r.https6)?;
    for k in [s.report.https, s.report.https6].into_iter().flatten() {
        if let Some((other, _)) = all.iter().find(|(_, a)| *a == Some(k)) {
            return Err(err(
                "report.https",
                format!("{k} is also {other}"),
                "give the https endpoint its own port, e.g. 8443",
            ));
        }
    }
    s.report.tls = super::tls::pair(
        file,
        ("report.tls_cert", r.tls_cert),
        ("report.tls_key", r.tls_key),
    )?;
    let https = s.report.https.is_some() || s.report.https6.is_some();
    match (https, s.report.tls.is_some()) {
        (true, false) => {
            return Err(err(
                "report.tls_cert",
                "report.https needs a certificate".into(),
                "set tls_cert and tls_key to the host certificate and key, e.g. /etc/grid-security/hostcert.pem and hostkey.pem",
            ))
        }
        (false, true) => {
            return Err(err(
                "report.https",
                "tls_cert is set but no https endpoint".into(),
                "add https = \"REAL_IP:8443\" (or remove tls_cert and tls_key)",
            ))
        }
        _ => {}
    }
    if let Some(ca) = r.client_ca {
        if !https {
            return Err(err(
                "report.client_ca",
                "client certificates are asked for on report.https only".into(),
                "add https = \"REAL_IP:8443\" with tls_cert and tls_key, or remove client_ca",
            ));
        }
        let p = super::tls::abs(file, "report.client_ca", &ca)?;
        super::tls::ca_path(file, "report.client_ca", &p)?;
        s.report.client_ca = Some(p);
    }
    if let Some(m) = &r.macaroon_secret {
        let p = PathBuf::from(m);
        if !p.is_absolute() {
            return Err(err(
                "report.macaroon_secret",
                format!("`{}` is not an absolute path", m.escape_debug()),
                "write the path of macaroons.secretkey in the XRootD config, e.g. /etc/xrootd/macaroon-secret",
            ));
        }
        s.report.macaroon_secret = Some(p);
    }
    for (i, n) in r.allow_clients.iter().enumerate() {
        let key = format!("report.allow_clients[{i}]");
        if s.report.client_ca.is_none() {
            return Err(err(
                "report.allow_clients",
                "names client certificates, but report.client_ca is not set".into(),
                "set client_ca to the CA(s) of the directors' and peers' certificates",
            ));
        }
        if n.is_empty() || n.len() > 255 || n.chars().any(|c| c.is_control()) {
            return Err(err(
                &key,
                format!("`{}` is not a certificate name", n.escape_debug()),
                "write a subject CN or DNS name, e.g. \"gridftp-n2.example.org\"",
            ));
        }
        s.report.allow_clients.push(n.clone());
    }

    let p = raw.pool;
    for (i, peer) in p.peers.iter().enumerate() {
        let key = format!("pool.peers[{i}]");
        let base = parse_peer(peer).map_err(|e| {
            err(
                &key,
                e,
                "list the other nodes' [report] http or https endpoints, e.g. peers = [\"https://gridftp-n2.example.org:8443\"]",
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
    s.pool.interval = dur(
        "pool.interval",
        &p.interval,
        default_pool_interval(s.pool.peers.len()),
    )?;
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

    if let Some(ca) = p.ca {
        let path = super::tls::abs(file, "pool.ca", &ca)?;
        super::tls::ca_path(file, "pool.ca", &path)?;
        s.pool.ca = Some(path);
    }
    s.pool.client = super::tls::pair(file, ("pool.cert", p.cert), ("pool.key", p.key))?;
    if let Some(u) = p.self_url {
        s.pool.self_url = Some(parse_peer(&u).map_err(|e| {
            err(
                "pool.self",
                e,
                "write this node's entry as the other nodes list it, e.g. self = \"https://gridftp-n1.example.org:8443\"",
            )
        })?);
    }

    if let Some(t) = p.depool_threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(err(
                "pool.depool_threshold",
                format!("{t} is not a share between 0 and 1"),
                "use e.g. 0.5 (keep at least half the pool serving through a shared failure), or 0 to never hold a node in",
            ));
        }
        s.pool.depool_threshold = t;
    }
    if let Some(m) = p.min_serving {
        if !(0..=256).contains(&m) {
            return Err(err(
                "pool.min_serving",
                format!("{m} is out of range"),
                "use 0 to 256 (the number of serving nodes below which pool status and nagios warn; default 1)",
            ));
        }
        s.pool.min_serving = m as u32;
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
            crate::config::check::CheckKind::Certificate { hostnames, .. } => {
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

    /// Without `interval`, a large pool is polled less often: at most ten polls a second
    /// per node, never faster than every 2 s; the timeout, `max_age` and an explicit
    /// interval follow as before.
    #[test]
    fn pool_interval_scales_with_the_pool() {
        use std::time::Duration;
        let peers = |n: usize| {
            let list: Vec<String> = (1..=n)
                .map(|i| format!("\"http://10.0.{}.{}:8080\"", i / 200, i % 200 + 1))
                .collect();
            format!("[pool]\npeers = [{}]\n", list.join(", "))
        };
        let p = |n: usize, extra: &str| parse(&format!("{}{extra}", peers(n))).unwrap().daemon.pool;
        assert_eq!(p(3, "").interval, Duration::from_secs(2));
        assert_eq!(p(20, "").interval, Duration::from_secs(2));
        assert_eq!(p(50, "").interval, Duration::from_secs(5));
        assert_eq!(p(50, "").max_age, Duration::from_secs(15));
        assert_eq!(p(50, "").timeout, Duration::from_secs(1));
        assert_eq!(p(256, "").interval, Duration::from_millis(25_600));
        assert_eq!(
            p(50, "interval = \"2s\"\n").interval,
            Duration::from_secs(2)
        );
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
            crate::config::check::CheckKind::Command { user, .. } => {
                assert_eq!(user.as_deref(), Some("nobody"))
            }
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
    fn xrootd_webdav_and_tpc_client_keys() {
        use crate::config::check::CheckKind;
        let c = parse(
            "[[check]]\nkind = \"xrootd\"\nstat = \"/data/probe\"\n\
             [[check]]\nkind = \"webdav\"\ntarget = \"https://127.0.0.1:8443/data/probe\"\nsni = \"gridftp.example.org\"\n\
             [[check]]\nkind = \"certificate\"\ntpc_client = true\n",
        )
        .unwrap();
        let k: Vec<&CheckKind> = c.daemon.checks.iter().map(|c| &c.kind).collect();
        assert!(
            matches!(k[0], CheckKind::Xrootd { login: true, stat: Some(p), .. } if p == "/data/probe"),
            "{:?}",
            k[0]
        );
        assert!(
            matches!(
                k[1],
                CheckKind::Webdav {
                    expect_status: 207,
                    sni: Some(_),
                    ..
                }
            ),
            "{:?}",
            k[1]
        );
        assert!(
            matches!(
                k[2],
                CheckKind::Certificate {
                    tpc_client: true,
                    ..
                }
            ),
            "{:?}",
            k[2]
        );
        let key = |extra: &str| parse(&format!("[[check]]\n{extra}")).unwrap_err().key;
        // stat needs the login; a path with a space or a relative one is refused.
        assert_eq!(
            key("kind = \"xrootd\"\nlogin = false\nstat = \"/data/p\"\n"),
            "check[0].stat"
        );
        assert_eq!(
            key("kind = \"xrootd\"\nstat = \"data/p\"\n"),
            "check[0].stat"
        );
        assert_eq!(key("kind = \"xrootd\"\nstat = \"/a b\"\n"), "check[0].stat");
        assert_eq!(key("kind = \"xrootd\"\nsni = \"x.org\"\n"), "check[0].sni");
        assert_eq!(key("kind = \"webdav\"\n"), "check[0].target");
        assert_eq!(
            key("kind = \"webdav\"\ntarget = \"ftp://h/\"\n"),
            "check[0].target"
        );
        // TLS keys need https.
        assert_eq!(
            key("kind = \"webdav\"\ntarget = \"http://h:1/p\"\nsni = \"x.org\"\n"),
            "check[0].sni"
        );
        assert_eq!(
            key("kind = \"webdav\"\ntarget = \"https://h:1/p\"\nexpect_status = 9\n"),
            "check[0].expect_status"
        );
        assert_eq!(
            key("kind = \"https\"\ntarget = \"https://h:1/\"\ntpc_client = true\n"),
            "check[0].tpc_client"
        );
    }

    #[test]
    fn https_check_keys() {
        let c = parse(
            "[[check]]\nkind = \"https\"\ntarget = \"https://127.0.0.1:8443/ping\"\nca_file = \"/etc/ca.pem\"\n\
             client_cert = \"/etc/c.pem\"\nclient_key = \"/etc/k.pem\"\nsni = \"gridftp.example.org\"\n",
        )
        .unwrap();
        match &c.daemon.checks[0].kind {
            crate::config::check::CheckKind::Https {
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
        assert_eq!((p.depool_threshold, p.min_serving), (0.5, 1));
        let c = parse("[pool]\ndepool_threshold = 0.75\nmin_serving = 2\n").unwrap();
        assert_eq!(
            (c.daemon.pool.depool_threshold, c.daemon.pool.min_serving),
            (0.75, 2)
        );
        let key = |t: &str| parse(&format!("[pool]\n{t}")).unwrap_err().key;
        assert_eq!(key("depool_threshold = 1.5"), "pool.depool_threshold");
        assert_eq!(key("depool_threshold = -0.1"), "pool.depool_threshold");
        assert_eq!(key("depool_threshold = nan"), "pool.depool_threshold");
        assert_eq!(key("min_serving = -1"), "pool.min_serving");
        assert_eq!(key("peers = [\"ftp://h:1\"]"), "pool.peers[0]");
        assert_eq!(key("peers = [\"https://h\"]"), "pool.peers[0]");
        assert_eq!(key("ca = \"ca.pem\""), "pool.ca");
        assert_eq!(key("ca = \"/nonexistent/ca.pem\""), "pool.ca");
        assert_eq!(key("cert = \"/c.pem\""), "pool.key");
        let c = parse("[pool]\npeers = [\"https://n2.example.org:8443/\"]\n").unwrap();
        assert_eq!(c.daemon.pool.peers, vec!["https://n2.example.org:8443"]);
        let rk = |t: &str| parse(&format!("[report]\n{t}")).unwrap_err().key;
        assert_eq!(rk("https = \"192.0.2.11:8443\""), "report.tls_cert");
        assert_eq!(rk("tls_cert = \"/c.pem\""), "report.tls_key");
        assert_eq!(rk("client_ca = \"/ca.pem\""), "report.client_ca");
        assert_eq!(rk("allow_clients = [\"a\"]"), "report.allow_clients");
        assert_eq!(
            rk("macaroon_secret = \"macaroon-secret\""),
            "report.macaroon_secret"
        );
        let m = parse("[report]\nmacaroon_secret = \"/etc/xrootd/macaroon-secret\"\n").unwrap();
        assert_eq!(
            m.daemon.report.macaroon_secret,
            Some(std::path::PathBuf::from("/etc/xrootd/macaroon-secret"))
        );
        assert_eq!(
            rk("http = \"192.0.2.11:8080\"\nhttps = \"192.0.2.11:8080\""),
            "report.https"
        );
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
