//! `choose = "pool"` on top of the pool poller: the nodes the poller holds as up (ready,
//! weight > 0, answered within the bound) that give a target for the same listener.

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
                let doc = peer.status.as_ref()?;
                let target = doc
                    .node
                    .redirects
                    .iter()
                    .find(|r| r.listen == listen)?
                    .target
                    .clone();
                Some(Candidate {
                    node: peer.url.clone(),
                    target,
                    weight,
                })
            })
            .collect()
    }
}
