//! Which node a request is sent to. `self` is this node: the director already chose it.
//! `pool` picks among the healthy nodes of `[pool] peers`, weighted by the weight each
//! reports (which already falls with its sessions and load), so a busy node gets fewer
//! uploads than a round-robin would send it.

use std::net::SocketAddr;
use std::sync::Arc;

/// One node that may receive a redirected request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node's name as the pool knows it (its report endpoint).
    pub node: String,
    /// `scheme://host[:port]` that this node gives for the listener.
    pub target: String,
    pub weight: u32,
}

/// The nodes that may receive requests for one listener, fresh from the pool poller.
/// Implementations return only nodes that are up and ready with a non-zero weight and
/// whose data is not stale: the chooser trusts the list.
pub trait PoolView: Send + Sync {
    fn candidates(&self, listen: SocketAddr) -> Vec<Candidate>;
}

/// A pool view with a fixed list, for a node whose `[pool]` is empty: only itself.
pub struct Fixed(pub Vec<Candidate>);

impl PoolView for Fixed {
    fn candidates(&self, _listen: SocketAddr) -> Vec<Candidate> {
        self.0.clone()
    }
}

pub enum Chooser {
    SelfNode(String),
    Pool(Arc<dyn PoolView>),
}

impl Chooser {
    /// The target base URL for one request, or None when no node may take it.
    pub fn pick(&self, listen: SocketAddr) -> Option<String> {
        match self {
            Chooser::SelfNode(t) => Some(t.clone()),
            Chooser::Pool(view) => {
                let c = view.candidates(listen);
                weighted(&c, fastrand::u64(..)).map(|c| c.target.clone())
            }
        }
    }
}

/// The candidate that `r` lands on, each weighted by its reported weight.
pub fn weighted(c: &[Candidate], r: u64) -> Option<&Candidate> {
    let items: Vec<(&Candidate, u32)> = c.iter().map(|c| (c, c.weight)).collect();
    crate::pool::pick_weighted(&items, r).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(node: &str, w: u32) -> Candidate {
        Candidate {
            node: node.into(),
            target: format!("http://{node}:8000"),
            weight: w,
        }
    }

    #[test]
    fn shares_follow_weights() {
        let list = vec![c("a", 100), c("b", 0), c("c", 50)];
        let mut n = std::collections::HashMap::new();
        for r in 0..150u64 {
            *n.entry(weighted(&list, r).unwrap().node.clone())
                .or_insert(0) += 1;
        }
        assert_eq!(n.get("a"), Some(&100));
        assert_eq!(n.get("b"), None, "a zero weight is never chosen");
        assert_eq!(n.get("c"), Some(&50));
    }

    #[test]
    fn nothing_healthy_is_none() {
        assert!(weighted(&[], 7).is_none());
        assert!(weighted(&[c("a", 0)], 7).is_none());
        let ch = Chooser::Pool(Arc::new(Fixed(vec![])));
        assert!(ch.pick("192.0.2.100:8000".parse().unwrap()).is_none());
    }
}
