//! The depool threshold: whether this node keeps serving while only its `shared` checks
//! fail (a dependency every node shares: NFS, the site CA, DNS), so that one shared
//! failure does not take the whole pool out. PyBal's `depool-threshold` does the same at
//! the director; keepalived has nothing like it (its virtual_server `quorum` only runs
//! scripts, it never keeps a failed real server in), so each node decides from the pool
//! view it already polls.
//!
//! There is no protocol between the nodes: every node applies the same rule to data every
//! node sees, the URLs of `[pool] peers` and what each peer's validated `/status` says
//! (`shared_failure`: its only failing checks are shared). The rule does not depend on
//! who is held (a held node is not counted as healthy), so a hold cannot feed back into
//! itself and the views converge within one poll round once states settle.
//!
//! The rule, for a pool of `n` members (this node included) and threshold `t`:
//! - `need = ceil(t x n)` nodes must serve;
//! - healthy: fresh, valid, up and without a shared failure (not counting this node);
//! - candidates: fresh, valid nodes with a shared failure, and this node itself;
//! - with `healthy >= need` nobody is held; otherwise the first `need - healthy`
//!   candidates by URL order are held, and this node holds when it is among them;
//! - a hold also needs answers from more than half of the pool (this node included):
//!   a node that cannot see most of its peers cannot tell a shared failure from its own,
//!   and leaves, as it would without the threshold.

use super::{PeerState, PoolView};
use std::time::SystemTime;

/// What the rule concluded, with the numbers for the log and `/status` readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// This node may serve while only its shared checks fail.
    pub hold: bool,
    /// Members of the pool (this node included).
    pub members: usize,
    /// Members with a fresh, valid answer (this node included).
    pub seen: usize,
    /// Other nodes serving without a shared failure.
    pub healthy: usize,
    /// Nodes that must serve: `ceil(threshold x members)`.
    pub need: usize,
    /// Why, in words, for the log.
    pub why: String,
}

/// Applies the rule to `view` for the node whose entry is marked `is_self`.
pub fn decide(view: &PoolView, threshold: f64, now: SystemTime) -> Decision {
    let members = view.peers.len();
    let mut d = Decision {
        hold: false,
        members,
        seen: 0,
        healthy: 0,
        need: 0,
        why: String::new(),
    };
    let Some(me) = view.peers.iter().find(|p| p.is_self) else {
        d.why = "this node is not in the pool view".into();
        return d;
    };
    if threshold <= 0.0 || members == 0 {
        d.why = "depool_threshold is 0".into();
        return d;
    }
    d.need = ((threshold * members as f64).ceil() as usize).min(members);
    let mut candidates: Vec<&str> = vec![me.url.as_str()];
    for p in &view.peers {
        let st = p.state(now, view.max_age);
        if matches!(
            st,
            PeerState::Unreachable | PeerState::Stale | PeerState::Invalid
        ) {
            continue;
        }
        d.seen += 1;
        if p.is_self {
            continue;
        }
        let Some(s) = &p.status else { continue };
        if s.shared_failure && matches!(st, PeerState::Up | PeerState::Held | PeerState::Down) {
            candidates.push(p.url.as_str());
        } else if st == PeerState::Up {
            d.healthy += 1;
        }
    }
    // This node's own entry is never stale in a fresh view; when the view itself is stale
    // it is, and then nothing is seen.
    if d.seen * 2 <= members {
        d.why = format!(
            "only {} of {} pool members answer: a shared failure cannot be told from this node's own",
            d.seen, members
        );
        return d;
    }
    if d.healthy >= d.need {
        d.why = format!(
            "{} other node(s) serve without a shared failure, {} needed",
            d.healthy, d.need
        );
        return d;
    }
    candidates.sort_unstable();
    candidates.dedup();
    let slots = d.need - d.healthy;
    let rank = candidates
        .iter()
        .position(|u| *u == me.url)
        .unwrap_or(usize::MAX);
    d.hold = rank < slots;
    d.why = format!(
        "{} other node(s) serve without a shared failure, {} needed: the first {} of {} node(s) with a shared failure by URL stay in; this node is number {}",
        d.healthy,
        d.need,
        slots,
        candidates.len(),
        rank.saturating_add(1)
    );
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PeerView;
    use crate::wire::peer::PeerStatus;
    use crate::wire::state::{Admin, NodeState};
    use crate::wire::status::StatusDoc;
    use std::time::Duration;

    /// `kind`: 'u' up, 's' shared failure (down), 'h' held, 'd' down (not shared),
    /// 'x' unreachable, 'r' drained.
    fn view(kinds: &str, me: usize) -> PoolView {
        let now = SystemTime::now();
        let peers = kinds
            .chars()
            .enumerate()
            .map(|(i, k)| {
                let doc = |st, adm, w, shared: bool, held: bool| {
                    let mut d = StatusDoc::sample(st, adm, w);
                    d.shared_failure = shared;
                    d.held = held;
                    Some(PeerStatus::unchecked(d))
                };
                let status = match k {
                    'u' => doc(NodeState::Up, Admin::Ready, 100, false, false),
                    's' => doc(NodeState::Down, Admin::Ready, 0, true, false),
                    'h' => doc(NodeState::Up, Admin::Ready, 100, true, true),
                    'd' => doc(NodeState::Down, Admin::Ready, 0, false, false),
                    'r' => doc(NodeState::Drain, Admin::Drain, 0, false, false),
                    _ => None,
                };
                PeerView {
                    url: format!("http://192.0.2.{}:8080", 11 + i),
                    is_self: i == me,
                    status,
                    error: (k == 'x').then(|| "connection refused".into()),
                    invalid: None,
                    fetched_at: now,
                }
            })
            .collect();
        PoolView {
            peers,
            max_age: Duration::from_secs(6),
        }
    }

    fn holds(kinds: &str, t: f64) -> Vec<bool> {
        (0..kinds.len())
            .map(|me| decide(&view(kinds, me), t, SystemTime::now()).hold)
            .collect()
    }

    #[test]
    fn a_failure_on_every_node_keeps_the_threshold_serving_by_url_order() {
        // Each node sees the other three with a shared failure; its own entry counts as a
        // candidate whatever it shows.
        assert_eq!(holds("ssss", 0.5), [true, true, false, false]);
        // Already held nodes count as candidates, not as healthy: no feedback.
        assert_eq!(holds("hhss", 0.5), [true, true, false, false]);
        assert_eq!(holds("ssss", 0.75), [true, true, true, false]);
        assert_eq!(holds("ssss", 1.0), [true, true, true, true]);
        assert_eq!(holds("ssss", 0.0), [false, false, false, false]);
        // Five nodes, half: ceil(2.5) = 3.
        assert_eq!(holds("sssss", 0.5), [true, true, true, false, false]);
    }

    #[test]
    fn healthy_nodes_fill_the_threshold_first() {
        // Two healthy of four: nobody with a shared failure is held.
        let v = view("uuss", 2);
        let d = decide(&v, 0.5, SystemTime::now());
        assert!(!d.hold, "{d:?}");
        assert_eq!((d.healthy, d.need, d.seen), (2, 2, 4));
        // One healthy: one more is needed, the first by URL among the failing ones.
        assert_eq!(holds("usss", 0.5)[1..], [true, false, false]);
        // A node down for another reason and a drained one count as neither.
        assert_eq!(holds("drss", 0.5)[2..], [true, true]);
    }

    #[test]
    fn a_node_that_sees_too_few_peers_does_not_hold() {
        // Three of four unreachable from node 0: it sees only itself.
        let d = decide(&view("sxxx", 0), 0.5, SystemTime::now());
        assert!(!d.hold, "{d:?}");
        assert!(d.why.contains("only 1 of 4"), "{}", d.why);
        // Half is not more than half.
        assert!(!decide(&view("ssxx", 0), 0.5, SystemTime::now()).hold);
        // Three of four seen: the rule applies.
        assert!(decide(&view("sssx", 0), 0.5, SystemTime::now()).hold);
        // A stale view (the poller stalled) sees nobody, this node included.
        let d = decide(
            &view("ssss", 0),
            0.5,
            SystemTime::now() + Duration::from_secs(60),
        );
        assert!(!d.hold, "{d:?}");
        // A view without this node decides nothing.
        let mut v = view("ssss", 0);
        v.peers[0].is_self = false;
        assert!(!decide(&v, 0.5, SystemTime::now()).hold);
    }

    #[test]
    fn a_single_node_pool_keeps_its_node() {
        assert_eq!(holds("s", 0.5), [true]);
    }
}
