//! The last hour of every pool node's state, weight and sessions, for the pool page's
//! graphs. The poller records each round here; the page only reads.
//!
//! Memory is bounded whatever the poll interval: a node gets at most one sample every
//! [`STEP`] (a faster poller skips rounds), samples older than [`WINDOW`] are dropped, and
//! each node's ring holds at most [`MAX_SAMPLES`]. Nodes that leave `[pool] peers` lose
//! their history at the next round, so the number of rings is bounded by the peer list
//! (at most 256 entries, checked when the config loads).

use super::{PeerState, PoolView};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How far back the history goes.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// Samples kept per node: one every [`STEP`] over [`WINDOW`].
pub const MAX_SAMPLES: usize = 720;
/// The shortest time between two samples of one node.
pub const STEP: Duration = Duration::from_secs(WINDOW.as_secs() / MAX_SAMPLES as u64);

/// The lab's hook `LVS_NODE_HISTORY_STEP_MS=N`: a sample every N ms instead of every
/// [`STEP`] (0: every poll round), so that a benchmark fills the [`MAX_SAMPLES`] of a full
/// hour in minutes (tests/bench/scale.sh). The ring and the page are unchanged: only the
/// time between samples shrinks. Only in builds with the `fault-injection` feature
/// (tests/run.sh); release builds never read it.
#[cfg(feature = "fault-injection")]
fn injected_step() -> Option<Duration> {
    static STEP_MS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    STEP_MS
        .get_or_init(|| {
            std::env::var("LVS_NODE_HISTORY_STEP_MS")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .map(Duration::from_millis)
}

#[cfg(not(feature = "fault-injection"))]
fn injected_step() -> Option<Duration> {
    None
}

/// One node at one poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: SystemTime,
    pub state: PeerState,
    /// The advertised weight; None without an answer.
    pub weight: Option<u32>,
    /// Established sessions; None without an answer.
    pub sessions: Option<u64>,
}

/// Per node (by report endpoint URL), oldest sample first.
#[derive(Debug, Default, Clone)]
pub struct History {
    nodes: HashMap<String, VecDeque<Sample>>,
}

/// What the poller writes and the report endpoint reads; it outlives poller restarts.
pub type SharedHistory = Arc<Mutex<History>>;

impl History {
    pub fn shared() -> SharedHistory {
        Arc::new(Mutex::new(History::default()))
    }

    /// Adds one sample per node of `view` (unless that node's last one is younger than
    /// [`STEP`]), drops what is older than [`WINDOW`], and forgets nodes not in `view`.
    pub fn record(&mut self, view: &PoolView, now: SystemTime) {
        self.nodes
            .retain(|url, _| view.peers.iter().any(|p| &p.url == url));
        // A poll round takes up to its timeout: allow a little slack so that a 5 s poller
        // is not thinned to one sample every 10 s.
        let step = injected_step()
            .unwrap_or(STEP)
            .saturating_sub(Duration::from_millis(500));
        for p in &view.peers {
            let ring = self.nodes.entry(p.url.clone()).or_default();
            let due = ring
                .back()
                .map(|s| now.duration_since(s.at).map(|d| d >= step).unwrap_or(true))
                .unwrap_or(true);
            if due {
                let st = p.state(now, view.max_age);
                let doc = p.status.as_ref();
                ring.push_back(Sample {
                    at: now,
                    state: st,
                    weight: doc.map(|d| d.weight),
                    sessions: doc.map(|d| d.load.sessions),
                });
            }
            while ring.len() > MAX_SAMPLES
                || ring.front().is_some_and(|s| {
                    now.duration_since(s.at)
                        .map(|d| d > WINDOW)
                        .unwrap_or(false)
                })
            {
                ring.pop_front();
            }
        }
    }

    /// The samples of the node at `url`, oldest first (empty for an unknown node).
    pub fn samples(&self, url: &str) -> Vec<Sample> {
        self.nodes
            .get(url)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PeerView;

    fn view(urls: &[&str], at: SystemTime) -> PoolView {
        PoolView {
            max_age: Duration::from_secs(3),
            peers: urls
                .iter()
                .map(|u| PeerView {
                    url: u.to_string(),
                    is_self: false,
                    status: None,
                    error: Some("connection refused".into()),
                    invalid: None,
                    fetched_at: at,
                })
                .collect(),
        }
    }

    #[test]
    fn bounded_by_step_window_and_peer_list() {
        let mut h = History::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // A 300 ms poller for two hours: at most one sample per STEP, one hour kept.
        let mut t = t0;
        while t < t0 + 2 * WINDOW {
            h.record(&view(&["a", "b"], t), t);
            t += Duration::from_millis(300);
        }
        let a = h.samples("a");
        assert!(a.len() <= MAX_SAMPLES, "{}", a.len());
        assert!(a.len() >= 600, "{}", a.len());
        let span = a.last().unwrap().at.duration_since(a[0].at).unwrap();
        assert!(span <= WINDOW, "{span:?}");
        assert_eq!(a[0].state, PeerState::Unreachable);
        assert_eq!(a[0].weight, None);
        // A node whose answer was refused is recorded as invalid, without numbers.
        let mut bad = view(&["a", "b"], t);
        bad.peers[1].error = None;
        bad.peers[1].invalid = Some("too many checks (300 > 256)".into());
        t += STEP;
        h.record(&bad, t);
        let b = h.samples("b");
        assert_eq!(b.last().unwrap().state, PeerState::Invalid);
        assert_eq!(b.last().unwrap().weight, None);
        // A node that leaves the peer list is forgotten.
        h.record(&view(&["a"], t), t);
        assert!(h.samples("b").is_empty());
        assert!(!h.samples("a").is_empty());
    }
}
