//! `choose = "pool"` on top of the pool poller: the nodes the poller holds as up (ready,
//! weight > 0, answered within the bound, validated) that give a target for the same
//! listener. Targets and weights come from the validated view only
//! ([`crate::wire::peer::PeerStatus`]): a node's target names that node, its weight is at
//! most 256.

use super::choose::{Candidate, PoolView as View};
use crate::pool::PoolRx;
use std::net::SocketAddr;
use std::time::SystemTime;

/// Reads the latest poll round at every request; never blocks the poller.
pub struct FromPool(pub PoolRx);

impl View for FromPool {
    fn candidates(&self, listen: SocketAddr) -> Vec<Candidate> {
        let view = self.0.borrow().clone();
        view.eligible(SystemTime::now())
            .into_iter()
            .filter_map(|(peer, weight)| {
                // Validated: a target that does not name its node made the node invalid,
                // so it is not among the eligible ones.
                let target = peer.status.as_ref()?.redirect_target(listen)?.to_string();
                Some(Candidate {
                    node: peer.url.clone(),
                    target,
                    weight,
                })
            })
            .collect()
    }
}
