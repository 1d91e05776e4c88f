//! Node health: per-check rise/fall debouncing, the admin state, the node state and the
//! advertised weight. Reporters only ever read the cached [`Snapshot`]; probes write
//! results through [`Health::record`].
//!
//! A result is only trusted while it is fresh: a check whose last result is older than its
//! bound (`stale_after`, from its interval and timeout) counts as down, so a wedged or dead
//! check loop can never keep a node "up". The daemon calls [`Health::refresh`] every second
//! so staleness shows without any new result.

pub mod checks;
pub mod macaroon;
pub mod metrics;
pub mod sockdiag;
pub mod status;

use crate::util::time::now_ms;
pub use crate::wire::state::{Admin, AdminState, CheckStatus, Load, NodeState, VipView};
use lvs_shared::config::daemon::Weight;
use serde::Serialize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Name of the built-in data plane check.
pub const DATAPLANE: &str = "dataplane";

pub use crate::wire::state::DEFAULT_STALE;

/// A check's staleness bound: two missed intervals plus the timeout, and a second of slack.
pub fn stale_bound(interval: Duration, timeout: Duration) -> Duration {
    interval * 2 + timeout + Duration::from_secs(1)
}

/// Everything a reporter needs, computed once per change.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub state: NodeState,
    pub admin: AdminState,
    /// Why the node is down (the first failing check), if it is; when `held`, the
    /// shared check that fails.
    pub reason: Option<String>,
    /// Admin ready, at least one check fails and every failing check is `shared` and has
    /// reported (a check that never ran is no shared failure: nothing is held at start-up).
    pub shared_failure: bool,
    /// Serving despite `shared_failure`: the daemon granted a hold from the pool view
    /// ([`Health::set_hold`]), or the shared failure is younger than the hold grace.
    pub held: bool,
    /// Held only because the shared failure is younger than the hold grace
    /// ([`Health::set_hold_grace`]): the pool view may not show the peers' failure yet.
    pub hold_pending: bool,
    pub weight: u32,
    pub base_weight: u32,
    pub load: Load,
    pub checks: Vec<CheckStatus>,
    pub vips: Vec<VipView>,
    pub arp_suppressed: bool,
    pub repairs_total: u64,
    pub last_repair_ms: Option<f64>,
    /// Why the last SIGHUP was refused (the previous config stays in force); None after a
    /// good reload.
    pub reload_error: Option<String>,
    /// The watched certificates, as their checks last read them.
    pub certificates: Vec<CertFact>,
    /// The macaroon secret's fingerprint as last read (`[report] macaroon_secret`).
    pub macaroon: Option<MacaroonFact>,
    pub version: &'static str,
    /// Pre-rendered `/health` body and agent-check line (the hot paths copy bytes only).
    #[serde(skip)]
    pub health_line: bytes::Bytes,
    #[serde(skip)]
    pub agent_line: bytes::Bytes,
}

impl Snapshot {
    pub fn http_ok(&self) -> bool {
        self.state == NodeState::Up
    }
}

struct Inner {
    checks: Vec<CheckStatus>,
    admin: AdminState,
    weight: Weight,
    load: Load,
    vips: Vec<VipView>,
    arp_suppressed: bool,
    repairs_total: u64,
    last_repair_ms: Option<f64>,
    reload_error: Option<String>,
    /// What the `certificate` checks last read, by check name.
    certificates: Vec<CertFact>,
    /// The pool needs this node while only shared checks fail (decided by the daemon
    /// from the pool view, which sits above this layer).
    hold: bool,
    /// How long a fresh shared failure keeps the node up before the hold decides
    /// (milliseconds; 0: no grace, no hold by time).
    hold_grace_ms: u64,
    /// When the current shared failure began (unix milliseconds).
    shared_since_ms: Option<u64>,
    macaroon: Option<MacaroonFact>,
}

/// The macaroon secret as last read: its path and fingerprint, or why it cannot be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MacaroonFact {
    pub path: String,
    pub fingerprint: Option<String>,
    pub error: Option<String>,
}

/// One watched certificate as its `certificate` check last read it: `/status`, `/metrics`
/// and the pool read this, never the file (a hung mount must not reach them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertFact {
    pub check: String,
    pub path: String,
    /// notAfter, unix seconds; None when the last read failed (see `error`).
    pub not_after: Option<i64>,
    pub error: Option<String>,
}

/// Shared, cheap-to-read health state.
pub struct Health {
    inner: Mutex<Inner>,
    snap: RwLock<Arc<Snapshot>>,
    /// The node state, for those that act the moment it changes (BFD).
    state_tx: tokio::sync::watch::Sender<NodeState>,
}

impl Health {
    pub fn new(weight: Weight, admin: AdminState) -> Arc<Health> {
        let inner = Inner {
            checks: vec![CheckStatus::new(DATAPLANE, DATAPLANE, 1, 1)],
            admin,
            weight,
            load: Load {
                cores: cores(),
                ..Load::default()
            },
            vips: Vec::new(),
            arp_suppressed: false,
            repairs_total: 0,
            last_repair_ms: None,
            reload_error: None,
            certificates: Vec::new(),
            hold: false,
            hold_grace_ms: 0,
            shared_since_ms: None,
            macaroon: None,
        };
        let snap = Arc::new(compute(&inner));
        let state_tx = tokio::sync::watch::channel(snap.state).0;
        Arc::new(Health {
            inner: Mutex::new(inner),
            snap: RwLock::new(snap),
            state_tx,
        })
    }

    /// Follows the node state: a change is seen as soon as the result that caused it.
    pub fn subscribe_state(&self) -> tokio::sync::watch::Receiver<NodeState> {
        self.state_tx.subscribe()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snap.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Inner)) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
        let now = now_ms();
        let s = compute_at(&g, now);
        // The shared failure's start is what the grace counts from; a snapshot computed
        // as it begins already counts it (`compute_at` treats None as "now").
        match (s.shared_failure, g.shared_since_ms) {
            (true, None) => g.shared_since_ms = Some(now),
            (false, Some(_)) => g.shared_since_ms = None,
            _ => {}
        }
        let s = Arc::new(s);
        let state = s.state;
        *self.snap.write().unwrap_or_else(|e| e.into_inner()) = s;
        self.state_tx.send_if_modified(|cur| {
            let changed = *cur != state;
            *cur = state;
            changed
        });
    }

    /// Makes the set of configured checks match `specs` (name, kind, rise, fall), keeping the
    /// state of checks that are unchanged. The data plane check always stays.
    pub fn set_checks(&self, specs: &[(String, String, u32, u32)]) {
        let with: Vec<_> = specs
            .iter()
            .map(|(n, k, r, f)| (n.clone(), k.clone(), *r, *f, DEFAULT_STALE))
            .collect();
        self.set_checks_stale(&with);
    }

    /// [`Health::set_checks`] with each check's staleness bound.
    pub fn set_checks_stale(&self, specs: &[(String, String, u32, u32, Duration)]) {
        self.update(|g| {
            let mut next = vec![g
                .checks
                .iter()
                .find(|c| c.name == DATAPLANE)
                .cloned()
                .unwrap_or_else(|| CheckStatus::new(DATAPLANE, DATAPLANE, 1, 1))];
            for (name, kind, rise, fall, stale) in specs {
                let kept = g.checks.iter().find(|c| {
                    &c.name == name && &c.kind == kind && c.rise == *rise && c.fall == *fall
                });
                let mut c = kept
                    .cloned()
                    .unwrap_or_else(|| CheckStatus::new(name, kind, *rise, *fall));
                c.stale_after_ms = stale.as_millis() as u64;
                next.push(c);
            }
            g.certificates
                .retain(|f| next.iter().any(|c| c.name == f.check));
            g.checks = next;
        });
    }

    /// Marks which configured checks are `shared` (the others are not).
    pub fn set_shared(&self, names: &[String]) {
        self.update(|g| {
            for c in g.checks.iter_mut() {
                c.shared = c.name != DATAPLANE && names.contains(&c.name);
            }
        });
    }

    /// Grants or withdraws the hold: while granted, a node whose only failing checks are
    /// shared stays up. The daemon decides from the pool view; a failing check that is not
    /// shared always takes the node down.
    pub fn set_hold(&self, hold: bool) {
        self.update(|g| g.hold = hold);
    }

    /// A shared failure younger than `grace` keeps the node up whatever the hold says:
    /// the peers fail at about the same moment, but the pool view shows it only after
    /// their checks and the next poll round, and a node that left at once would flap out
    /// and back in (with every node doing so, the pool would be empty for that time).
    /// Zero: no grace (without `[pool]` or with `depool_threshold = 0`).
    pub fn set_hold_grace(&self, grace: Duration) {
        self.update(|g| g.hold_grace_ms = grace.as_millis() as u64);
    }

    /// Re-evaluates staleness without a new result.
    pub fn refresh(&self) {
        self.update(|_| {});
    }

    /// Sets the data plane check's staleness bound.
    pub fn set_dataplane_stale(&self, d: Duration) {
        self.update(|g| {
            if let Some(c) = g.checks.iter_mut().find(|c| c.name == DATAPLANE) {
                c.stale_after_ms = d.as_millis() as u64;
            }
        });
    }

    /// Records the outcome of a SIGHUP: None when the new config is in force.
    pub fn set_reload_error(&self, e: Option<String>) {
        self.update(|g| g.reload_error = e);
    }

    pub fn reset_check(&self, name: &str) {
        self.update(|g| {
            if let Some(c) = g.checks.iter_mut().find(|c| c.name == name) {
                // The results go; what the config set (the `shared` mark, the staleness
                // bound from the check's interval and timeout) stays.
                let mut fresh = CheckStatus::new(&c.name, &c.kind, c.rise, c.fall);
                fresh.shared = c.shared;
                fresh.stale_after_ms = c.stale_after_ms;
                *c = fresh;
            }
        });
    }

    pub fn record(&self, name: &str, result: Result<String, String>, latency: Duration) {
        self.update(|g| {
            if let Some(c) = g.checks.iter_mut().find(|c| c.name == name) {
                let was = c.up;
                let (ok, detail) = match result {
                    Ok(d) => (true, d),
                    Err(d) => (false, d),
                };
                c.apply(ok, detail, latency);
                if was != c.up {
                    tracing::info!(check = name, up = ?c.up, detail = %c.detail, "check changed state");
                }
            }
        });
    }

    /// Records what the `certificate` check `check` read from `path`: notAfter, or why
    /// it could not be read.
    pub fn set_certificate(&self, check: &str, path: &str, read: Result<i64, String>) {
        let fact = CertFact {
            check: check.to_string(),
            path: path.to_string(),
            not_after: read.as_ref().ok().copied(),
            error: read.err(),
        };
        self.update(
            |g| match g.certificates.iter_mut().find(|f| f.check == check) {
                Some(f) => *f = fact,
                None => g.certificates.push(fact),
            },
        );
    }

    /// Records the macaroon secret's fingerprint (or why it cannot be read); None when
    /// no secret is configured.
    pub fn set_macaroon(&self, read: Option<(String, Result<String, String>)>) {
        let fact = read.map(|(path, r)| MacaroonFact {
            path,
            fingerprint: r.as_ref().ok().cloned(),
            error: r.err(),
        });
        self.update(|g| g.macaroon = fact);
    }

    pub fn set_dataplane(&self, vips: Vec<VipView>, arp_suppressed: bool) {
        self.update(|g| {
            g.vips = vips;
            g.arp_suppressed = arp_suppressed;
        });
    }

    pub fn count_repair(&self, elapsed: Duration) {
        self.update(|g| {
            g.repairs_total += 1;
            g.last_repair_ms = Some(elapsed.as_secs_f64() * 1000.0);
        });
    }

    pub fn set_load(&self, sessions: u64, load1: f64) {
        self.update(|g| {
            g.load.sessions = sessions;
            g.load.load1 = load1;
        });
    }

    pub fn set_weight(&self, w: Weight) {
        self.update(|g| g.weight = w);
    }

    pub fn set_admin(&self, a: AdminState) {
        self.update(|g| g.admin = a);
    }

    pub fn admin(&self) -> AdminState {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admin
            .clone()
    }
}

pub fn cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// The weight formula: `base * min(1 - sessions/(cores*sessions_per_core),
/// 1 - load1/(cores*load_per_core))`, clamped to `[min, base]`; a zero limit disables
/// that signal.
pub fn weight(w: &Weight, load: &Load) -> u32 {
    let cores = load.cores.max(1) as f64;
    let mut factor: f64 = 1.0;
    if w.sessions_per_core > 0.0 {
        factor = factor.min(1.0 - load.sessions as f64 / (cores * w.sessions_per_core));
    }
    if w.load_per_core > 0.0 {
        factor = factor.min(1.0 - load.load1 / (cores * w.load_per_core));
    }
    let v = (w.base as f64 * factor.clamp(0.0, 1.0)).round() as u32;
    v.clamp(w.min, w.base)
}

fn compute(g: &Inner) -> Snapshot {
    compute_at(g, now_ms())
}

fn compute_at(g: &Inner, now: u64) -> Snapshot {
    // A check that has not reported yet, or whose last result is stale, counts as down:
    // fail closed.
    let all_failing: Vec<(&CheckStatus, String)> = g
        .checks
        .iter()
        .filter_map(|c| match c.up {
            Some(true) => c.stale(now).map(|why| (c, why)),
            _ => Some((c, c.detail.clone())),
        })
        .collect();
    let failing = all_failing.first();
    let reason = failing.map(|(c, why)| format!("{}: {}", c.name, why));
    let shared_failure = g.admin.admin == Admin::Ready
        && !all_failing.is_empty()
        && all_failing.iter().all(|(c, _)| c.shared && c.up.is_some());
    let pending = shared_failure
        && !g.hold
        && g.hold_grace_ms > 0
        && g.shared_since_ms
            .is_none_or(|t| now < t.saturating_add(g.hold_grace_ms));
    let held = shared_failure && (g.hold || pending);
    let state = match g.admin.admin {
        Admin::Maint => NodeState::Maint,
        Admin::Drain => NodeState::Drain,
        Admin::Ready if failing.is_some() && !held => NodeState::Down,
        Admin::Ready => NodeState::Up,
    };
    let weight = if state == NodeState::Up {
        weight(&g.weight, &g.load)
    } else {
        0
    };
    let base = g.weight.base;
    let mut health_line = format!(
        "state={} admin={} weight={} base={}",
        state.as_str(),
        g.admin.admin.as_str(),
        weight,
        base
    );
    if held {
        health_line.push_str(" held=1");
    }
    if let Some(r) = &reason {
        health_line.push_str(&format!(" reason=\"{}\"", one_line(r)));
    }
    health_line.push('\n');
    let agent_line = agent_line(state, g.admin.admin, weight, base, reason.as_deref());
    Snapshot {
        state,
        admin: g.admin.clone(),
        reason,
        shared_failure,
        held,
        hold_pending: pending,
        weight,
        base_weight: base,
        load: g.load.clone(),
        checks: g.checks.clone(),
        vips: g.vips.clone(),
        arp_suppressed: g.arp_suppressed,
        repairs_total: g.repairs_total,
        last_repair_ms: g.last_repair_ms,
        reload_error: g.reload_error.clone(),
        certificates: g.certificates.clone(),
        macaroon: g.macaroon.clone(),
        version: env!("CARGO_PKG_VERSION"),
        health_line: health_line.into(),
        agent_line: agent_line.into(),
    }
}

/// The HAProxy agent-check reply. `ready` is sent whenever admin is ready, because HAProxy
/// keeps a server drained (or in maintenance) until the agent says `ready`.
fn agent_line(
    state: NodeState,
    admin: Admin,
    weight: u32,
    base: u32,
    reason: Option<&str>,
) -> String {
    let why = |r: Option<&str>| r.map(|r| format!(" #{}", one_line(r))).unwrap_or_default();
    let mut s = match (admin, state) {
        (Admin::Maint, _) => "maint".to_string(),
        (Admin::Drain, _) if reason.is_some() => format!("down drain{}", why(reason)),
        (Admin::Drain, _) => "drain".to_string(),
        (Admin::Ready, NodeState::Up) => {
            let pct = (weight as u64 * 100).div_ceil(base.max(1) as u64);
            format!("up ready {pct}%")
        }
        (Admin::Ready, _) => format!("down ready{}", why(reason)),
    };
    s.push('\n');
    s
}

/// Keeps a free-form reason on one line and free of quotes.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || c == '"' { ' ' } else { c })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> Weight {
        Weight {
            base: 100,
            min: 1,
            sessions_per_core: 10.0,
            load_per_core: 2.0,
        }
    }

    #[test]
    fn rise_and_fall() {
        let mut c = CheckStatus::new("g", "gridftp", 2, 3);
        c.apply(true, "ok".into(), Duration::ZERO);
        assert_eq!(c.up, Some(true));
        c.apply(false, "x".into(), Duration::ZERO);
        c.apply(false, "x".into(), Duration::ZERO);
        assert_eq!(c.up, Some(true));
        c.apply(false, "x".into(), Duration::ZERO);
        assert_eq!(c.up, Some(false));
        c.apply(true, "ok".into(), Duration::ZERO);
        assert_eq!(c.up, Some(false));
        c.apply(false, "x".into(), Duration::ZERO);
        c.apply(true, "ok".into(), Duration::ZERO);
        c.apply(true, "ok".into(), Duration::ZERO);
        assert_eq!(c.up, Some(true));
    }

    #[test]
    fn weight_formula() {
        let l = |s, l1| Load {
            sessions: s,
            load1: l1,
            cores: 2,
        };
        assert_eq!(weight(&w(), &l(0, 0.0)), 100);
        assert_eq!(weight(&w(), &l(5, 0.0)), 75);
        assert_eq!(weight(&w(), &l(0, 2.0)), 50);
        assert_eq!(weight(&w(), &l(5, 2.0)), 50);
        assert_eq!(weight(&w(), &l(100, 0.0)), 1);
        assert_eq!(weight(&Weight::default(), &l(100, 9.0)), 100);
    }

    #[test]
    fn states_and_lines() {
        let h = Health::new(w(), AdminState::default());
        h.set_checks(&[("gridftp".into(), "gridftp".into(), 1, 1)]);
        let s = h.snapshot();
        assert_eq!(s.state, NodeState::Down);
        h.record(DATAPLANE, Ok("vips present".into()), Duration::ZERO);
        h.record("gridftp", Ok("220".into()), Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(s.state, NodeState::Up);
        assert_eq!(
            &s.health_line[..],
            b"state=up admin=ready weight=100 base=100\n"
        );
        assert_eq!(&s.agent_line[..], b"up ready 100%\n");
        h.record("gridftp", Err("connection refused".into()), Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(
            &s.agent_line[..],
            b"down ready #gridftp: connection refused\n"
        );
        assert!(s
            .health_line
            .starts_with(b"state=down admin=ready weight=0"));
        h.set_admin(AdminState {
            admin: Admin::Maint,
            ..AdminState::default()
        });
        assert_eq!(&h.snapshot().agent_line[..], b"maint\n");
        h.record("gridftp", Ok("220".into()), Duration::ZERO);
        h.set_admin(AdminState {
            admin: Admin::Drain,
            ..AdminState::default()
        });
        let s = h.snapshot();
        assert_eq!(&s.agent_line[..], b"drain\n");
        assert!(s
            .health_line
            .starts_with(b"state=drain admin=drain weight=0"));
    }

    #[test]
    fn a_hold_keeps_a_node_up_only_while_every_failing_check_is_shared() {
        let h = Health::new(w(), AdminState::default());
        h.set_checks(&[
            ("nfs".into(), "filesystem".into(), 1, 1),
            ("gridftp".into(), "gridftp".into(), 1, 1),
        ]);
        h.set_shared(&["nfs".into()]);
        h.record(DATAPLANE, Ok("ok".into()), Duration::ZERO);
        h.record("gridftp", Ok("220".into()), Duration::ZERO);
        h.record("nfs", Err("not a mount point".into()), Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.shared_failure, s.held),
            (NodeState::Down, true, false)
        );
        h.set_hold(true);
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.shared_failure, s.held),
            (NodeState::Up, true, true)
        );
        assert_eq!(s.weight, 100);
        assert_eq!(
            &s.health_line[..],
            b"state=up admin=ready weight=100 base=100 held=1 reason=\"nfs: not a mount point\"\n"
        );
        assert_eq!(&s.agent_line[..], b"up ready 100%\n");
        // A failing check that is not shared takes the node down, hold or not.
        h.record("gridftp", Err("connection refused".into()), Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.shared_failure, s.held),
            (NodeState::Down, false, false)
        );
        h.record("gridftp", Ok("220".into()), Duration::ZERO);
        // A drained node is never held.
        h.set_admin(AdminState {
            admin: Admin::Drain,
            ..AdminState::default()
        });
        let s = h.snapshot();
        assert_eq!((s.state, s.held), (NodeState::Drain, false));
        h.set_admin(AdminState::default());
        // Without the shared mark the same failure takes the node down.
        h.set_shared(&[]);
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.shared_failure, s.held),
            (NodeState::Down, false, false)
        );
        h.set_shared(&["nfs".into()]);
        h.record("nfs", Ok("ok".into()), Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.shared_failure, s.held),
            (NodeState::Up, false, false)
        );
        assert_eq!(
            &s.health_line[..],
            b"state=up admin=ready weight=100 base=100\n"
        );
    }

    /// The daemon resets a (re)configured check after setting its staleness bound: the
    /// bound from its interval and timeout stays, not the 60 s default.
    #[test]
    fn a_reset_keeps_the_configured_staleness_bound() {
        let h = Health::new(w(), AdminState::default());
        let bound = stale_bound(Duration::from_secs(1), Duration::from_millis(500));
        h.set_checks_stale(&[("g".into(), "gridftp".into(), 1, 1, bound)]);
        h.reset_check("g");
        let s = h.snapshot();
        let c = s.checks.iter().find(|c| c.name == "g").unwrap();
        assert_eq!(c.stale_after_ms, bound.as_millis() as u64);
    }

    #[test]
    fn a_fresh_shared_failure_stays_in_for_the_grace_only() {
        let h = Health::new(w(), AdminState::default());
        h.set_checks(&[("nfs".into(), "filesystem".into(), 1, 1)]);
        h.set_shared(&["nfs".into()]);
        // The daemon starts a (re)configured check from a reset: the mark stays.
        h.reset_check("nfs");
        h.set_hold_grace(Duration::from_millis(300));
        h.record(DATAPLANE, Ok("ok".into()), Duration::ZERO);
        // Never run: down, no shared failure, no grace.
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.shared_failure, s.held),
            (NodeState::Down, false, false)
        );
        h.record("nfs", Ok("ok".into()), Duration::ZERO);
        assert_eq!(h.snapshot().state, NodeState::Up);
        h.record("nfs", Err("not writable".into()), Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.shared_failure, s.held, s.hold_pending),
            (NodeState::Up, true, true, true)
        );
        std::thread::sleep(Duration::from_millis(350));
        h.refresh();
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.held, s.hold_pending),
            (NodeState::Down, false, false)
        );
        // A hold granted later keeps it in, not pending.
        h.set_hold(true);
        let s = h.snapshot();
        assert_eq!(
            (s.state, s.held, s.hold_pending),
            (NodeState::Up, true, false)
        );
        // Recovery ends the failure; the next one gets a grace of its own.
        h.set_hold(false);
        h.record("nfs", Ok("ok".into()), Duration::ZERO);
        h.record("nfs", Err("not writable".into()), Duration::ZERO);
        assert!(h.snapshot().hold_pending);
        // Without a grace, a shared failure without a hold is down at once.
        h.set_hold_grace(Duration::ZERO);
        assert_eq!(h.snapshot().state, NodeState::Down);
    }

    #[test]
    fn stale_results_count_as_down() {
        let h = Health::new(w(), AdminState::default());
        h.set_checks_stale(&[(
            "gridftp".into(),
            "gridftp".into(),
            1,
            1,
            Duration::from_secs(3),
        )]);
        h.record(DATAPLANE, Ok("ok".into()), Duration::ZERO);
        h.record("gridftp", Ok("220".into()), Duration::ZERO);
        assert_eq!(h.snapshot().state, NodeState::Up);
        let g = h.inner.lock().unwrap();
        let s = compute_at(&g, now_ms() + 2_000);
        assert_eq!(s.state, NodeState::Up);
        let s = compute_at(&g, now_ms() + 4_000);
        assert_eq!(s.state, NodeState::Down);
        assert!(
            s.reason
                .as_deref()
                .unwrap()
                .starts_with("gridftp: no result for 4"),
            "{:?}",
            s.reason
        );
        assert_eq!(&s.agent_line[..4], b"down");
        // The data plane check's default bound is a minute.
        let s = compute_at(&g, now_ms() + 61_000);
        assert!(s
            .reason
            .as_deref()
            .unwrap()
            .starts_with("dataplane: no result"));
    }
}
