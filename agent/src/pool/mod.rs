//! The pool view: what every node of `[pool] peers` reports on its `/status`, polled with a
//! bounded interval and timeout. One poller per `lvs-node run` feeds every consumer (the
//! redirector's pool choice, the pool page) through a [`watch`] channel of [`PoolView`];
//! `lvs-node pool status` and `director-config --pool` use the same [`fetch`].
//!
//! A consumer inside `lvs-node run` takes a [`PoolRx`] (the daemon's `pool_tx.subscribe()`),
//! reads `rx.borrow().clone()` when it needs the pool, and asks the view, never the raw
//! documents, who may be chosen: [`PoolView::choose`] (weighted) or [`PoolView::eligible`].
//! The channel starts with an empty view and outlives poller restarts on reload, as does the
//! bounded [`history::History`] each round is recorded in (the pool page's graphs).
//!
//! Stale data is never used: a peer that does not answer within the timeout counts as
//! unreachable at once (its last good answer is dropped), and a consumer that reads a view
//! older than `max_age` (the poller stalled) sees every peer as stale, hence down.
//!
//! A peer's answer is untrusted: [`fetch`] hands it to [`crate::wire::peer::validate`]
//! (after resolving the host names its redirect targets give, with the poll's timeout, so
//! that the redirector's hot path never resolves anything), and a view carries only the
//! validated [`PeerStatus`]. A peer whose answer fails validation is [`PeerState::Invalid`]:
//! shown with its reason, never chosen, never configured.

pub mod depool;
pub mod history;
pub mod metrics;
pub mod page;

use crate::health::{Admin, Health, NodeState};
use crate::wire::peer::{self, PeerStatus, PeerUrl, Resolved, Source};
use crate::wire::status::StatusDoc;
use lvs_shared::config::daemon::Pool;
use lvs_shared::config::NodeConfig;
use lvs_shared::http::{self, reqwest, ClientOptions};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// A `/status` document is small; this bounds what a misbehaving peer can make us read.
pub const STATUS_LIMIT: usize = 256 * 1024;

/// What one poll of one node gave.
#[derive(Debug, Clone)]
pub struct PeerView {
    /// The node's report endpoint, e.g. `http://192.0.2.12:8080`.
    pub url: String,
    /// This node itself (read from its own health state, not over HTTP).
    pub is_self: bool,
    /// The node's validated answer, or None when it did not give a usable one (see
    /// `error` and `invalid`).
    pub status: Option<PeerStatus>,
    /// Why there is no answer (no connection, timeout, HTTP error).
    pub error: Option<String>,
    /// Why the answer was refused ([`crate::wire::peer::Invalid`], safe to print).
    pub invalid: Option<String>,
    /// When this answer (or failure) was obtained.
    pub fetched_at: SystemTime,
}

/// A node's state as consumers must treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Up, admin ready, weight > 0: may be chosen.
    Up,
    /// Serving (and chosen like `Up`) although its shared checks fail, because
    /// `[pool] depool_threshold` needs it (see [`depool`]).
    Held,
    /// Reports itself down (a failing check).
    Down,
    Drain,
    Maint,
    /// No usable answer at the last poll.
    Unreachable,
    /// The answer is older than `max_age`.
    Stale,
    /// The answer failed validation (see `PeerView::invalid`).
    Invalid,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Up => "up",
            PeerState::Held => "held",
            PeerState::Down => "down",
            PeerState::Drain => "drain",
            PeerState::Maint => "maint",
            PeerState::Unreachable => "unreachable",
            PeerState::Stale => "stale",
            PeerState::Invalid => "invalid",
        }
    }

    /// The node takes traffic: up, or held in through a shared failure.
    pub fn serving(self) -> bool {
        matches!(self, PeerState::Up | PeerState::Held)
    }
}

impl PeerView {
    /// The state to act on at `now`.
    pub fn state(&self, now: SystemTime, max_age: Duration) -> PeerState {
        let age = now.duration_since(self.fetched_at).unwrap_or_default();
        if self.invalid.is_some() {
            return PeerState::Invalid;
        }
        let Some(s) = &self.status else {
            return PeerState::Unreachable;
        };
        if age > max_age {
            return PeerState::Stale;
        }
        match (s.admin.admin, s.state) {
            (Admin::Maint, _) | (_, NodeState::Maint) => PeerState::Maint,
            (Admin::Drain, _) | (_, NodeState::Drain) => PeerState::Drain,
            (Admin::Ready, NodeState::Up) if s.weight > 0 && s.held => PeerState::Held,
            (Admin::Ready, NodeState::Up) if s.weight > 0 => PeerState::Up,
            _ => PeerState::Down,
        }
    }

    /// The weight to choose this node with at `now`: its reported weight (clamped by
    /// validation) when it is up, None otherwise (drained, maint, down, unreachable, stale
    /// and invalid nodes are never chosen).
    pub fn eligible_weight(&self, now: SystemTime, max_age: Duration) -> Option<u32> {
        self.state(now, max_age)
            .serving()
            .then(|| self.status.as_ref().map(|s| s.weight))
            .flatten()
    }
}

/// One complete poll round.
#[derive(Debug, Clone)]
pub struct PoolView {
    pub peers: Vec<PeerView>,
    /// Answers older than this count as stale.
    pub max_age: Duration,
}

impl PoolView {
    pub fn empty() -> PoolView {
        PoolView {
            peers: Vec::new(),
            max_age: Duration::ZERO,
        }
    }

    /// The nodes that may be chosen now, with their weights.
    pub fn eligible(&self, now: SystemTime) -> Vec<(&PeerView, u32)> {
        self.peers
            .iter()
            .filter_map(|p| p.eligible_weight(now, self.max_age).map(|w| (p, w)))
            .collect()
    }

    /// Weighted choice among the eligible nodes. `r` is any random number (the caller's
    /// source of randomness); None when no node is eligible.
    pub fn choose(&self, now: SystemTime, r: u64) -> Option<&PeerView> {
        pick_weighted(&self.eligible(now), r).copied()
    }
}

/// The item that `r` lands on when each one owns a share of the range proportional to its
/// weight; zero weights own nothing, and an empty or all-zero list gives None.
pub fn pick_weighted<T>(items: &[(T, u32)], r: u64) -> Option<&T> {
    let total: u64 = items.iter().map(|(_, w)| *w as u64).sum();
    if total == 0 {
        return None;
    }
    let mut x = r % total;
    for (item, w) in items {
        if x < *w as u64 {
            return Some(item);
        }
        x -= *w as u64;
    }
    None
}

/// What consumers hold: the latest [`PoolView`].
pub type PoolRx = watch::Receiver<Arc<PoolView>>;

/// The client used for every poll: bounded by `timeout`, idle connections kept (the same
/// peers are asked every interval). An `https://` peer must present a certificate that
/// verifies against `ca` (the system's roots without it) for the name in its URL, else it
/// is unreachable with the TLS reason; `cert` is shown to peers that ask for one.
pub fn client(
    timeout: Duration,
    ca: Option<&std::path::Path>,
    cert: Option<&lvs_shared::config::tls::Pair>,
    peers: &[String],
) -> Result<reqwest::Client, String> {
    if let Some(p) = cert {
        crate::util::tls::load(&p.cert, &p.key)?;
    }
    ClientOptions {
        ca_file: ca.map(|p| p.to_path_buf()),
        system_roots: ca.is_none() && peers.iter().any(|p| p.starts_with("https://")),
        client_cert: cert.map(|p| (p.cert.clone(), p.key.clone())),
        ..ClientOptions::with_timeout(timeout)
    }
    .build()
}

/// Why a fetch gave no document.
enum Failure {
    /// No usable answer: the peer may be down or closed to us.
    Unreachable(String),
    /// An answer that is not a document this node accepts (too large, not parsable).
    Invalid(String),
}

/// GET `{base}/status` and parse it (no validation yet).
async fn fetch_doc(client: &reqwest::Client, base: &str) -> Result<StatusDoc, Failure> {
    let url = format!("{}/status", base.trim_end_matches('/'));
    match http::get(client, &url, None, STATUS_LIMIT).await {
        Ok(r) if r.status == 200 => serde_json::from_slice::<StatusDoc>(&r.body)
            .map_err(|e| Failure::Invalid(format!("not an lvs-node /status document: {e}"))),
        Ok(r) if r.status == 403 || r.status == 404 => Err(Failure::Unreachable(format!(
            "HTTP {} (is this node in the peer's [report] allow list?)",
            r.status
        ))),
        Ok(r) => Err(Failure::Unreachable(format!("HTTP {}", r.status))),
        Err(e) if e.starts_with("response larger than") => Err(Failure::Invalid(e)),
        Err(e) if e.contains("closed") || e == "connection reset" => Err(Failure::Unreachable(
            format!("{e} (is this node in the peer's [report] allow list?)"),
        )),
        Err(e) => Err(Failure::Unreachable(e)),
    }
}

/// The addresses of each name, each look-up bounded by `timeout`; a name that does not
/// resolve in time resolves to nothing.
async fn resolve(names: Vec<peer::HostName>, timeout: Duration) -> Resolved {
    let mut out = Resolved::default();
    let jobs = names.into_iter().map(|n| async move {
        let addrs = tokio::time::timeout(timeout, tokio::net::lookup_host((n.as_str(), 0)))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|it| it.map(|a| a.ip()).collect())
            .unwrap_or_default();
        (n, addrs)
    });
    for (n, addrs) in futures::future::join_all(jobs).await {
        out.insert(&n, addrs);
    }
    out
}

/// GET `{base}/status` within `timeout`, parse it, resolve the host names of its redirect
/// targets (within `timeout` again) and validate it. Any failure gives a view without
/// status, with the reason in `error` (no usable answer) or `invalid` (refused).
pub async fn fetch(client: &reqwest::Client, base: &str, timeout: Duration) -> PeerView {
    let mut v = PeerView {
        url: base.to_string(),
        is_self: false,
        status: None,
        error: None,
        invalid: None,
        fetched_at: SystemTime::now(),
    };
    let expected = match PeerUrl::parse(base) {
        Ok(u) => u,
        Err(e) => {
            v.error = Some(peer::printable(&e, peer::MAX_TEXT));
            return v;
        }
    };
    let doc = match tokio::time::timeout(timeout, fetch_doc(client, base)).await {
        Ok(Ok(d)) => d,
        Ok(Err(Failure::Invalid(e))) => {
            v.invalid = Some(peer::Invalid::new(e).to_string());
            v.fetched_at = SystemTime::now();
            return v;
        }
        Ok(Err(Failure::Unreachable(e))) => {
            v.error = Some(peer::printable(&e, peer::MAX_TEXT));
            v.fetched_at = SystemTime::now();
            return v;
        }
        Err(_) => {
            v.error = Some(format!(
                "no answer within {}",
                lvs_shared::duration::format(timeout)
            ));
            v.fetched_at = SystemTime::now();
            return v;
        }
    };
    v.fetched_at = SystemTime::now();
    let names = peer::names_to_resolve(&doc, &expected);
    let resolved = resolve(names, timeout).await;
    match peer::validate(doc, &expected, Source::Peer(&resolved)) {
        Ok(s) => v.status = Some(s),
        Err(e) => v.invalid = Some(e.to_string()),
    }
    v
}

/// This node's own view, from its health state: validated by the same rules (its redirect
/// targets come from its own config, so they are not tied to its URL).
pub fn own_view(url: &str, doc: StatusDoc) -> PeerView {
    let mut v = PeerView {
        url: url.to_string(),
        is_self: true,
        status: None,
        error: None,
        invalid: None,
        fetched_at: SystemTime::now(),
    };
    match PeerUrl::parse(url) {
        Ok(u) => match peer::validate(doc, &u, Source::Own) {
            Ok(s) => v.status = Some(s),
            Err(e) => v.invalid = Some(e.to_string()),
        },
        Err(e) => v.error = Some(peer::printable(&e, peer::MAX_TEXT)),
    }
    v
}

/// The base URL of this node's own report endpoint, if it has one: `[pool] self` (an
/// `https://NAME:PORT` entry cannot be recognised by address), else `http://` + `[report] http`.
pub fn self_url(cfg: &NodeConfig) -> Option<String> {
    cfg.daemon
        .pool
        .self_url
        .clone()
        .or_else(|| cfg.daemon.report.http.map(|a| format!("http://{a}")))
}

/// Polls every peer concurrently, each bounded by `timeout`; this node is read from
/// `health` directly (it need not be in its own allow list).
pub async fn poll_once(
    client: &reqwest::Client,
    peers: &[String],
    timeout: Duration,
    me: Option<(&Health, &NodeConfig)>,
) -> Vec<PeerView> {
    let own = me.and_then(|(_, c)| self_url(c));
    let jobs = peers.iter().map(|p| {
        let own = own.clone();
        async move {
            if let (Some((h, c)), Some(o)) = (me, &own) {
                if o == p {
                    return own_view(p, crate::health::status::build(&h.snapshot(), c));
                }
            }
            fetch(client, p, timeout).await
        }
    });
    futures::future::join_all(jobs).await
}

/// The node list to poll: `[pool] peers`, plus this node's own endpoint when it is not
/// listed (so the view always includes this node).
pub fn members(cfg: &NodeConfig) -> Vec<String> {
    let mut v = cfg.daemon.pool.peers.clone();
    if let Some(own) = self_url(cfg) {
        if !v.contains(&own) {
            v.insert(0, own);
        }
    }
    v
}

/// The poller of `lvs-node run`: one round every `interval`, published to `tx`. Logs each
/// change of a peer's state.
pub async fn run(
    pool: Pool,
    cfg: crate::util::ConfigRx,
    health: Arc<Health>,
    tx: watch::Sender<Arc<PoolView>>,
    history: history::SharedHistory,
) {
    let client = match client(
        pool.timeout,
        pool.ca.as_deref(),
        pool.client.as_ref(),
        &pool.peers,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("pool polling disabled: {e}");
            return;
        }
    };
    let mut last: Vec<(String, PeerState)> = Vec::new();
    let mut tick = tokio::time::interval(pool.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cfg = cfg.borrow().clone();
        let peers = members(&cfg);
        let views = poll_once(&client, &peers, pool.timeout, Some((&health, &cfg))).await;
        let now = SystemTime::now();
        let states: Vec<(String, PeerState)> = views
            .iter()
            .map(|v| (v.url.clone(), v.state(now, pool.max_age)))
            .collect();
        for (v, (url, st)) in views.iter().zip(&states) {
            let before = last.iter().find(|(u, _)| u == url).map(|(_, s)| *s);
            if before != Some(*st) {
                let why = v
                    .error
                    .clone()
                    .or_else(|| v.invalid.clone())
                    .or_else(|| v.status.as_ref().and_then(|s| s.reason.clone()))
                    .unwrap_or_default();
                tracing::info!(peer = %url, state = %st.as_str(), reason = %why, "pool peer state");
            }
        }
        last = states;
        let view = PoolView {
            peers: views,
            max_age: pool.max_age,
        };
        history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&view, now);
        tx.send_replace(Arc::new(view));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(state: NodeState, admin: Admin, weight: u32) -> StatusDoc {
        StatusDoc::sample(state, admin, weight)
    }

    fn peer(url: &str, s: Option<StatusDoc>, age: Duration) -> PeerView {
        let u = PeerUrl::parse("http://192.0.2.11:8080").unwrap();
        PeerView {
            url: url.into(),
            is_self: false,
            status: s.map(|d| peer::validate(d, &u, Source::Peer(&Resolved::default())).unwrap()),
            error: None,
            invalid: None,
            fetched_at: SystemTime::now() - age,
        }
    }

    #[test]
    fn only_fresh_ready_up_nodes_are_chosen_by_weight() {
        let fresh = Duration::ZERO;
        let view = PoolView {
            max_age: Duration::from_secs(6),
            peers: vec![
                peer("a", Some(doc(NodeState::Up, Admin::Ready, 30)), fresh),
                peer("b", Some(doc(NodeState::Up, Admin::Ready, 70)), fresh),
                peer("drain", Some(doc(NodeState::Drain, Admin::Drain, 0)), fresh),
                peer("maint", Some(doc(NodeState::Maint, Admin::Maint, 0)), fresh),
                peer("down", Some(doc(NodeState::Down, Admin::Ready, 0)), fresh),
                peer("gone", None, fresh),
                PeerView {
                    invalid: Some("host name `a_b` has a character other than ...".into()),
                    ..peer("bad", None, fresh)
                },
                peer(
                    "old",
                    Some(doc(NodeState::Up, Admin::Ready, 100)),
                    Duration::from_secs(7),
                ),
            ],
        };
        let now = SystemTime::now();
        let states: Vec<_> = view
            .peers
            .iter()
            .map(|p| p.state(now, view.max_age).as_str())
            .collect();
        assert_eq!(
            states,
            [
                "up",
                "up",
                "drain",
                "maint",
                "down",
                "unreachable",
                "invalid",
                "stale"
            ]
        );
        let mut counts = std::collections::HashMap::new();
        for r in 0..100u64 {
            *counts
                .entry(view.choose(now, r).unwrap().url.clone())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.get("a"), Some(&30));
        assert_eq!(counts.get("b"), Some(&70));
        assert_eq!(counts.len(), 2);
        let none = PoolView {
            max_age: view.max_age,
            peers: view.peers[2..].to_vec(),
        };
        assert!(none.choose(now, 1).is_none());
    }
}
