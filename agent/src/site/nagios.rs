//! `lvs-node nagios`: a Nagios / Icinga / CheckMK plugin, so sites that monitor with those
//! see the node the way directors do, without a second probe to maintain.
//!
//! It follows the monitoring-plugins development guidelines: one status line
//! `LVS-NODE <STATE> - <text> | <perfdata>`, the details on the following lines, and the exit
//! codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Three parts are judged separately and the
//! worst one wins (CRITICAL > WARNING > UNKNOWN > OK, the guidelines' `max_state_alt`):
//!
//! - the agent, read from its report endpoint (`GET /status`): up is OK, drain and maint are
//!   WARNING (an admin took the node out on purpose), down is CRITICAL and names the failing
//!   checks. An agent that does not answer is CRITICAL: the guidelines keep UNKNOWN for the
//!   plugin's own failures, and a director sees that node as down too. When the report
//!   endpoint refuses the plugin (`[report] allow`), the plugin run as root reads the same
//!   status from the agent's root-only control socket; without it, UNKNOWN with the fix.
//! - the data plane, by the same plan as `lvs-node status`: drift is CRITICAL (a missing VIP
//!   or ARP suppression breaks the node or the whole pool). A drift is observed twice, 1 s
//!   apart, so a repair the agent is making at that moment is not reported.
//! - certificate expiry against `--cert-warn`/`--cert-crit` days.
//! - with `[pool] peers` or `--min-serving`: how many nodes of the pool serve (up, or held in
//!   through a shared failure by `[pool] depool_threshold`). None serving is CRITICAL (the
//!   VIP answers nothing), fewer than the minimum WARNING. This node counts from the agent
//!   part above; the others are read as `pool status` reads them.

use crate::health::checks::certificate;
use crate::site::gridftp_conf::{self, GridftpSettings};
use lvs_shared::config::check::CheckKind;
use lvs_shared::config::NodeConfig;
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Plugin states, ordered by how much they matter when combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl State {
    pub fn code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
    fn rank(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Unknown => 1,
            State::Warning => 2,
            State::Critical => 3,
        }
    }
    /// `max_state_alt`: CRITICAL > WARNING > UNKNOWN > OK.
    pub fn worst(self, other: State) -> State {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// One judged part: its state, a short text for the status line, details for the long
/// output, and performance data items (`label=value[UOM];warn;crit;min;max`).
#[derive(Debug, Clone)]
pub struct Part {
    pub state: State,
    pub text: String,
    pub details: Vec<String>,
    pub perf: Vec<String>,
}

impl Part {
    pub fn new(state: State, text: impl Into<String>) -> Part {
        Part {
            state,
            text: text.into(),
            details: Vec::new(),
            perf: Vec::new(),
        }
    }
}

/// The plugin's whole answer: the first line, then the details.
pub fn render(parts: &[Part]) -> (State, String) {
    let state = parts.iter().fold(State::Ok, |s, p| s.worst(p.state));
    // The parts that decide the state come first in the status line.
    let mut order: Vec<&Part> = parts.iter().collect();
    order.sort_by_key(|p| std::cmp::Reverse(p.state.rank()));
    let text = order
        .iter()
        .map(|p| one_line(&p.text))
        .collect::<Vec<_>>()
        .join("; ");
    let perf: Vec<&String> = parts.iter().flat_map(|p| &p.perf).collect();
    let mut out = format!("LVS-NODE {} - {text}", state.as_str());
    if !perf.is_empty() {
        out.push_str(" |");
        for p in perf {
            out.push(' ');
            out.push_str(p);
        }
    }
    out.push('\n');
    for p in parts {
        for d in &p.details {
            let _ = writeln!(out, "{}", one_line(d));
        }
    }
    (state, out)
}

/// `|` separates performance data and newlines end the status line: neither may appear in
/// free text such as a check's failure reason.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '|' || c.is_control() { ' ' } else { c })
        .collect()
}

/// What the plugin is asked to check (`lvs-node nagios` flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub cert_warn: u32,
    pub cert_crit: u32,
    /// Certificates to check; empty: the config's `certificate` checks, else GridFTP's.
    pub cert: Vec<PathBuf>,
    /// The agent's report endpoint; None: `[report] http`.
    pub agent: Option<String>,
    pub timeout: Duration,
    /// WARNING when fewer nodes of the pool serve; None: `[pool] min_serving`, and the
    /// pool is judged only when `[pool] peers` is set.
    pub min_serving: Option<u32>,
}

/// Every part of the plugin's answer, or why none could be given (UNKNOWN).
pub async fn check(config: &Path, args: &Options) -> Result<Vec<Part>, String> {
    if args.cert_crit > args.cert_warn {
        return Err(format!(
            "--cert-crit {} is more than --cert-warn {}: the critical threshold must be the \
             smaller number of days",
            args.cert_crit, args.cert_warn
        ));
    }
    let cfg = NodeConfig::load(config).map_err(|e| format!("bad config: {e}"))?;
    let (agent, own_state) = agent_part(&cfg, args).await;
    let dataplane = dataplane_part(&cfg).await;
    let cert = cert_part(&cfg, args);
    let mut parts = vec![agent, dataplane, cert];
    if !cfg.daemon.pool.peers.is_empty() || args.min_serving.is_some() {
        parts.push(pool_part(&cfg, args, own_state).await);
    }
    Ok(parts)
}

// ---------------------------------------------------------------------------------------
// The agent

/// The parts of `/status` the plugin reads; unknown fields are ignored so that a newer
/// agent stays readable.
#[derive(Debug, Deserialize)]
pub struct AgentStatus {
    pub state: String,
    #[serde(default)]
    pub admin: AdminView,
    #[serde(default)]
    pub weight: u32,
    #[serde(default)]
    pub base_weight: u32,
    #[serde(default)]
    pub load: LoadView,
    #[serde(default)]
    pub checks: Vec<CheckView>,
    #[serde(default)]
    pub repairs_total: u64,
    /// Serving through a shared failure (`[pool] depool_threshold`).
    #[serde(default)]
    pub held: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct AdminView {
    #[serde(default)]
    pub admin: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub since: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoadView {
    #[serde(default)]
    pub sessions: u64,
}

#[derive(Debug, Deserialize)]
pub struct CheckView {
    pub name: String,
    #[serde(default)]
    pub up: Option<bool>,
    #[serde(default)]
    pub detail: String,
}

fn agent_url(cfg: &NodeConfig, args: &Options) -> Option<String> {
    let base = match &args.agent {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{}", cfg.daemon.report.http?),
    };
    Some(if base.ends_with("/status") {
        base
    } else {
        format!("{base}/status")
    })
}

/// This node's state in the pool's terms, from its own status.
fn own_state(s: &AgentStatus) -> crate::pool::PeerState {
    use crate::pool::PeerState;
    match s.state.as_str() {
        "up" if s.weight > 0 && s.held => PeerState::Held,
        "up" if s.weight > 0 => PeerState::Up,
        "drain" => PeerState::Drain,
        "maint" => PeerState::Maint,
        _ => PeerState::Down,
    }
}

/// The agent's part, and this node's state in the pool (None: the agent could not be
/// read; the pool part counts the node as unreachable).
async fn agent_part(cfg: &NodeConfig, args: &Options) -> (Part, Option<crate::pool::PeerState>) {
    let Some(url) = agent_url(cfg, args) else {
        return (
            Part::new(
                State::Unknown,
                format!(
                    "agent not checked: no [report] http in {}; set it, or pass --agent URL",
                    cfg.file.display()
                ),
            ),
            None,
        );
    };
    let serving = |s: &AgentStatus| Some(own_state(s));
    let t0 = Instant::now();
    let client = match lvs_shared::http::ClientOptions::with_timeout(args.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            return (
                Part::new(
                    State::Unknown,
                    format!("cannot set up the HTTP client: {e}"),
                ),
                None,
            )
        }
    };
    let got = tokio::time::timeout(
        args.timeout,
        lvs_shared::http::get(&client, &url, None, 1 << 20),
    )
    .await;
    let took = t0.elapsed();
    let no_answer = || {
        format!(
            "no answer within {}",
            lvs_shared::duration::format(args.timeout)
        )
    };
    // The client's own timeout and the outer one are the same duration: either may fire.
    let failure = match got {
        Err(_) => no_answer(),
        Ok(Err(e)) if e == "timed out" => no_answer(),
        Ok(Err(e)) => e,
        Ok(Ok(r)) if r.status != 200 => format!("HTTP {} from {url}", r.status),
        Ok(Ok(r)) => {
            return match serde_json::from_slice::<AgentStatus>(&r.body) {
                Ok(s) => (judge_agent(&s, took), serving(&s)),
                Err(e) => (
                    Part::new(
                        State::Unknown,
                        format!("agent at {url} sent a reply that is not its status JSON: {e}"),
                    ),
                    None,
                ),
            };
        }
    };
    // Dead agent, or a live one whose report endpoint refuses us? The control socket tells.
    let alive = tokio::time::timeout(
        Duration::from_secs(2),
        crate::report::control::request(
            &cfg.daemon.control_socket,
            &crate::report::control::Request::Status,
        ),
    )
    .await;
    if let Ok(Ok(r)) = alive {
        // Root on this host reads the whole status from the root-only socket: the node's
        // own address needs no place in `[report] allow` (which would give every local
        // user `/status`).
        let from_socket = r
            .status
            .as_ref()
            .and_then(|doc| serde_json::to_value(doc).ok())
            .and_then(|v| serde_json::from_value::<AgentStatus>(v).ok());
        if let Some(s) = from_socket {
            let mut p = judge_agent(&s, took);
            p.details.push(format!(
                "read from the control socket {}: {url} refused this plugin ({failure})",
                cfg.daemon.control_socket.display()
            ));
            return (p, serving(&s));
        }
        if r.ok {
            return (
                Part::new(
                    State::Unknown,
                    format!(
                        "the agent runs (control socket {} answers) but {url} refused this plugin \
                     ({failure}): run the plugin as root (NRPE: through sudo), which reads the \
                     agent's root-only control socket; adding this node's own address to \
                     [report] allow would give every local user /status",
                        cfg.daemon.control_socket.display()
                    ),
                ),
                None,
            );
        }
    }
    let mut p = Part::new(
        State::Critical,
        format!("agent not answering at {url}: {failure}"),
    );
    p.details
        .push("is `lvs-node run` (systemctl status lvs-node) running?".into());
    (p, Some(crate::pool::PeerState::Down))
}

// ---------------------------------------------------------------------------------------
// The pool

async fn pool_part(
    cfg: &NodeConfig,
    args: &Options,
    own_state: Option<crate::pool::PeerState>,
) -> Part {
    let min = args.min_serving.unwrap_or(cfg.daemon.pool.min_serving);
    let own = crate::pool::self_url(cfg);
    let others: Vec<String> = crate::pool::members(cfg)
        .into_iter()
        .filter(|u| Some(u) != own.as_ref())
        .collect();
    let p = &cfg.daemon.pool;
    let client =
        match crate::pool::client(args.timeout, p.ca.as_deref(), p.client.as_ref(), &others) {
            Ok(c) => c,
            Err(e) => return Part::new(State::Unknown, format!("pool not checked: {e}")),
        };
    let views = crate::pool::poll_once(&client, &others, args.timeout, None).await;
    let now = std::time::SystemTime::now();
    let max_age = args.timeout + Duration::from_secs(1);
    let mut states: Vec<(String, crate::pool::PeerState)> = views
        .iter()
        .map(|v| (v.url.clone(), v.state(now, max_age)))
        .collect();
    if let Some(u) = &own {
        let st = own_state.unwrap_or(crate::pool::PeerState::Unreachable);
        states.insert(0, (u.clone(), st));
    }
    judge_pool(&states, min)
}

/// CRITICAL when no node serves, WARNING when fewer than `min` do, else OK; each node's
/// state in the details (URLs from the config, states this plugin's verdict).
pub fn judge_pool(states: &[(String, crate::pool::PeerState)], min: u32) -> Part {
    let serving = states.iter().filter(|(_, s)| s.serving()).count();
    let held = states
        .iter()
        .filter(|(_, s)| *s == crate::pool::PeerState::Held)
        .count();
    let n = states.len();
    let held_text = if held > 0 {
        format!(", {held} held in through a shared failure")
    } else {
        String::new()
    };
    let (state, text) = if serving == 0 {
        (
            State::Critical,
            format!("pool: no node of {n} serves, the VIP answers nothing"),
        )
    } else if serving < min as usize {
        (
            State::Warning,
            format!(
                "pool: {serving} of {n} node(s) serve{held_text}, fewer than the minimum of {min}"
            ),
        )
    } else {
        (
            State::Ok,
            format!("pool: {serving} of {n} node(s) serve{held_text}"),
        )
    };
    let mut p = Part::new(state, text);
    for (u, s) in states {
        p.details.push(format!("pool node {u}: {}", s.as_str()));
    }
    p.perf.push(format!("serving={serving};{min}:;1:;0;{n}"));
    p.perf.push(format!("held={held};;;0;{n}"));
    p
}

/// Maps the agent's state to the plugin's.
pub fn judge_agent(s: &AgentStatus, took: Duration) -> Part {
    let failing: Vec<&CheckView> = s.checks.iter().filter(|c| c.up != Some(true)).collect();
    let failing_text = failing
        .iter()
        .map(|c| format!("{} ({})", c.name, c.detail))
        .collect::<Vec<_>>()
        .join(", ");
    let reason = s
        .admin
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let since = if s.admin.since > 0 {
        format!(" since {}", crate::util::time::utc(s.admin.since))
    } else {
        String::new()
    };
    let (state, mut text) = match s.state.as_str() {
        "up" if s.held => (
            State::Warning,
            format!(
                "up, held in through a shared failure ([pool] depool_threshold): failing {failing_text}; weight {}/{}",
                s.weight, s.base_weight
            ),
        ),
        "up" => (
            State::Ok,
            format!(
                "up, weight {}/{}, {} session(s)",
                s.weight, s.base_weight, s.load.sessions
            ),
        ),
        "down" => (State::Critical, format!("down: failing {failing_text}")),
        "drain" => (
            State::Warning,
            format!(
                "drained{reason}{since}, {} session(s) left",
                s.load.sessions
            ),
        ),
        "maint" => (State::Warning, format!("maintenance{reason}{since}")),
        other => (
            State::Unknown,
            format!("agent reports an unknown state `{other}`"),
        ),
    };
    if matches!(s.state.as_str(), "drain" | "maint") && !failing.is_empty() {
        text.push_str(&format!("; also failing {failing_text}"));
    }
    let mut p = Part::new(state, text);
    for c in &s.checks {
        let st = match c.up {
            Some(true) => "up",
            Some(false) => "DOWN",
            None => "pending",
        };
        p.details
            .push(format!("check {}: {st}: {}", c.name, c.detail));
    }
    p.perf
        .push(format!("weight={};;;0;{}", s.weight, s.base_weight));
    p.perf.push(format!("sessions={};;;0", s.load.sessions));
    p.perf
        .push(format!("failing_checks={};;0;0", failing.len()));
    p.perf.push(format!("repairs={}c", s.repairs_total));
    p.perf
        .push(format!("agent_time={:.3}s;;;0", took.as_secs_f64()));
    p
}

// ---------------------------------------------------------------------------------------
// The data plane

async fn dataplane_part(cfg: &NodeConfig) -> Part {
    let mut st = crate::dataplane::observe(cfg).await;
    if st.as_ref().is_ok_and(|s| !s.converged()) {
        // The agent repairs within milliseconds: only a drift that stays counts.
        tokio::time::sleep(Duration::from_secs(1)).await;
        st = crate::dataplane::observe(cfg).await;
    }
    match st {
        Err(e) => Part::new(
            State::Unknown,
            format!("cannot read the data plane: {e} (run the plugin as root, e.g. with sudo)"),
        ),
        Ok(s) => judge_dataplane(&s),
    }
}

pub fn judge_dataplane(s: &crate::dataplane::Status) -> Part {
    let bad: Vec<String> = s
        .items
        .iter()
        .filter(|i| !i.ok)
        .map(|i| format!("{} {}: {} (want {})", i.kind, i.name, i.actual, i.desired))
        .collect();
    let vips = s.items.iter().filter(|i| i.kind == "vip").count();
    let mut p = if bad.is_empty() {
        Part::new(
            State::Ok,
            format!("data plane converged ({vips} VIP(s), arp {})", s.method),
        )
    } else {
        let mut p = Part::new(
            State::Critical,
            format!("data plane drift: {}", bad.join(", ")),
        );
        p.details
            .push("`lvs-node status` shows each item; `lvs-node up` repairs".into());
        p
    };
    p.perf.push(format!("drift_items={};;0;0", bad.len()));
    p
}

// ---------------------------------------------------------------------------------------
// Certificates

/// The certificates to check: `--cert`, else the config's `certificate` checks, else the
/// GridFTP host certificate as `lvs-node doctor` finds it.
fn cert_paths(cfg: &NodeConfig, args: &Options) -> Vec<PathBuf> {
    if !args.cert.is_empty() {
        return args.cert.clone();
    }
    let mut v: Vec<PathBuf> = Vec::new();
    for c in &cfg.daemon.checks {
        if let CheckKind::Certificate { cert, .. } = &c.kind {
            if !v.contains(cert) {
                v.push(cert.clone());
            }
        }
    }
    if !v.is_empty() {
        return v;
    }
    let paths = gridftp_conf::Paths::host();
    let gf = GridftpSettings::load(&paths.gridftp_conf, paths.sysconfig.as_deref());
    if let Some(s) = gf.x509_user_cert() {
        return vec![PathBuf::from(&s.value)];
    }
    gridftp_conf::DEFAULT_CERTS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .into_iter()
        .collect()
}

fn cert_part(cfg: &NodeConfig, args: &Options) -> Part {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let paths = cert_paths(cfg, args);
    if paths.is_empty() {
        return Part::new(
            State::Ok,
            "no certificate to check (none configured, no GridFTP host certificate)",
        );
    }
    let certs: Vec<(PathBuf, Result<i64, String>)> = paths
        .into_iter()
        .map(|p| {
            let r = std::fs::read(&p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))
                .and_then(|d| certificate::parse(&d))
                .map(|i| i.not_after);
            (p, r)
        })
        .collect();
    judge_certs(&certs, now, args.cert_warn, args.cert_crit)
}

/// Judges certificates by their notAfter (unix seconds) at `now`. An unreadable one is
/// CRITICAL: it is the certificate the service presents.
pub fn judge_certs(
    certs: &[(PathBuf, Result<i64, String>)],
    now: i64,
    warn: u32,
    crit: u32,
) -> Part {
    let mut state = State::Ok;
    let mut texts = Vec::new();
    let mut min_days: Option<i64> = None;
    let mut details = Vec::new();
    for (path, r) in certs {
        match r {
            Err(e) => {
                state = state.worst(State::Critical);
                texts.push(e.clone());
            }
            Ok(not_after) => {
                let days = (not_after - now).div_euclid(86400);
                min_days = Some(min_days.map_or(days, |m: i64| m.min(days)));
                let (st, t) = if *not_after <= now {
                    (
                        State::Critical,
                        format!("certificate {} has expired", path.display()),
                    )
                } else if days < crit as i64 {
                    (
                        State::Critical,
                        format!(
                            "certificate {} expires in {days} day(s) (critical below {crit})",
                            path.display()
                        ),
                    )
                } else if days < warn as i64 {
                    (
                        State::Warning,
                        format!(
                            "certificate {} expires in {days} day(s) (warning below {warn})",
                            path.display()
                        ),
                    )
                } else {
                    (
                        State::Ok,
                        format!(
                            "certificate {} valid for {days} more day(s)",
                            path.display()
                        ),
                    )
                };
                if st != State::Ok {
                    texts.push(t.clone());
                }
                details.push(t);
                state = state.worst(st);
            }
        }
    }
    let text = if texts.is_empty() {
        match min_days {
            Some(_) if certs.len() == 1 => details[0].clone(),
            Some(d) => format!("{} certificates valid for {d}+ more day(s)", certs.len()),
            None => String::new(),
        }
    } else {
        texts.join(", ")
    };
    let mut p = Part::new(state, text);
    p.details = details;
    if let Some(d) = min_days {
        p.perf.push(format!("cert_days={d};{warn}:;{crit}:"));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, admin: &str, checks: &[(&str, Option<bool>, &str)]) -> AgentStatus {
        AgentStatus {
            state: state.into(),
            admin: AdminView {
                admin: admin.into(),
                reason: Some("kernel update".into()),
                since: 1_795_392_000,
            },
            weight: if state == "up" { 75 } else { 0 },
            base_weight: 100,
            load: LoadView { sessions: 3 },
            checks: checks
                .iter()
                .map(|(n, up, d)| CheckView {
                    name: n.to_string(),
                    up: *up,
                    detail: d.to_string(),
                })
                .collect(),
            repairs_total: 2,
            held: false,
        }
    }

    #[test]
    fn worst_state_follows_max_state_alt() {
        assert_eq!(State::Ok.worst(State::Unknown), State::Unknown);
        assert_eq!(State::Unknown.worst(State::Warning), State::Warning);
        assert_eq!(State::Warning.worst(State::Critical), State::Critical);
        assert_eq!(State::Critical.worst(State::Unknown), State::Critical);
    }

    #[test]
    fn agent_states() {
        let ok = judge_agent(
            &status("up", "ready", &[("gridftp", Some(true), "220")]),
            Duration::from_millis(3),
        );
        assert_eq!(ok.state, State::Ok);
        assert_eq!(ok.text, "up, weight 75/100, 3 session(s)");
        assert!(ok.perf.contains(&"weight=75;;;0;100".to_string()));
        let down = judge_agent(
            &status(
                "down",
                "ready",
                &[("gridftp", Some(false), "connection refused")],
            ),
            Duration::ZERO,
        );
        assert_eq!(down.state, State::Critical);
        assert_eq!(down.text, "down: failing gridftp (connection refused)");
        let drain = judge_agent(&status("drain", "drain", &[]), Duration::ZERO);
        assert_eq!(drain.state, State::Warning);
        assert_eq!(
            drain.text,
            "drained: kernel update since 2026-11-23 00:00 UTC, 3 session(s) left"
        );
        let maint = judge_agent(&status("maint", "maint", &[]), Duration::ZERO);
        assert_eq!(maint.state, State::Warning);
        assert!(maint.text.starts_with("maintenance: kernel update"));
    }

    #[test]
    fn held_is_a_warning_and_the_pool_needs_a_serving_node() {
        let mut s = status("up", "ready", &[("nfs", Some(false), "not a mount point")]);
        s.held = true;
        let p = judge_agent(&s, Duration::ZERO);
        assert_eq!(p.state, State::Warning);
        assert!(p.text.contains("held in"), "{}", p.text);
        assert!(p.text.contains("nfs (not a mount point)"), "{}", p.text);

        use crate::pool::PeerState::*;
        let st = |v: &[crate::pool::PeerState]| -> Vec<(String, crate::pool::PeerState)> {
            v.iter()
                .enumerate()
                .map(|(i, s)| (format!("http://192.0.2.{}:8080", 11 + i), *s))
                .collect()
        };
        let none = judge_pool(&st(&[Drain, Drain, Down, Unreachable]), 1);
        assert_eq!(none.state, State::Critical);
        assert_eq!(
            none.text,
            "pool: no node of 4 serves, the VIP answers nothing"
        );
        assert!(none.perf.contains(&"serving=0;1:;1:;0;4".to_string()));
        // None serving is critical even with no minimum.
        assert_eq!(judge_pool(&st(&[Drain]), 0).state, State::Critical);
        let few = judge_pool(&st(&[Held, Held, Down, Down]), 3);
        assert_eq!(few.state, State::Warning);
        assert_eq!(
            few.text,
            "pool: 2 of 4 node(s) serve, 2 held in through a shared failure, fewer than the minimum of 3"
        );
        let ok = judge_pool(&st(&[Up, Up, Drain, Down]), 2);
        assert_eq!(ok.state, State::Ok);
        assert!(ok
            .details
            .contains(&"pool node http://192.0.2.14:8080: down".to_string()));
    }

    #[test]
    fn status_line_and_perfdata() {
        let mut a = Part::new(State::Ok, "up | weird\nreason");
        a.perf.push("weight=1;;;0;1".into());
        a.details.push("check x: up: ok".into());
        let b = Part::new(State::Warning, "cert soon");
        let (st, out) = render(&[a, b]);
        assert_eq!(st, State::Warning);
        assert_eq!(
            out,
            "LVS-NODE WARNING - cert soon; up   weird reason | weight=1;;;0;1\ncheck x: up: ok\n"
        );
    }

    #[test]
    fn certificate_thresholds() {
        let now = 1_000_000_000;
        let p = PathBuf::from("/c.pem");
        let at = |days: i64| vec![(p.clone(), Ok(now + days * 86400 + 60))];
        assert_eq!(judge_certs(&at(30), now, 14, 7).state, State::Ok);
        let w = judge_certs(&at(10), now, 14, 7);
        assert_eq!(w.state, State::Warning);
        assert!(w.text.contains("expires in 10 day(s)"), "{}", w.text);
        assert_eq!(w.perf, vec!["cert_days=10;14:;7:".to_string()]);
        assert_eq!(judge_certs(&at(5), now, 14, 7).state, State::Critical);
        assert_eq!(judge_certs(&at(-1), now, 14, 7).state, State::Critical);
        let bad = vec![(p.clone(), Err("cannot read /c.pem: gone".to_string()))];
        assert_eq!(judge_certs(&bad, now, 14, 7).state, State::Critical);
    }
}
