//! The pool view in `/metrics`, computed from the poller's latest round at each scrape: how
//! many nodes are in each state (public: states and numbers only), and each node's state
//! by its configured URL (the directors' part, since it names other hosts). Nothing a peer
//! sent is a label: states are this node's verdict, URLs come from `[pool] peers`.

use super::{PeerState, PoolRx};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::time::SystemTime;

type Labels = Vec<(&'static str, String)>;

const STATES: [PeerState; 8] = [
    PeerState::Up,
    PeerState::Held,
    PeerState::Down,
    PeerState::Drain,
    PeerState::Maint,
    PeerState::Unreachable,
    PeerState::Stale,
    PeerState::Invalid,
];

/// `pool_peers{state}`: nodes of the latest round in each state (every state listed).
#[derive(Debug)]
pub struct PoolCounts(pub PoolRx);

/// `pool_peer_state{peer,state}`: 1 for each node's state in the latest round.
#[derive(Debug)]
pub struct PoolPeers(pub PoolRx);

fn put(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    m: &impl EncodeMetric,
) -> std::fmt::Result {
    let me = enc.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(me)
}

impl Collector for PoolCounts {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let view = self.0.borrow().clone();
        let now = SystemTime::now();
        let f = Family::<Labels, Gauge>::default();
        for st in STATES {
            let _ = f.get_or_create(&vec![("state", st.as_str().to_string())]);
        }
        for p in &view.peers {
            f.get_or_create(&vec![(
                "state",
                p.state(now, view.max_age).as_str().to_string(),
            )])
            .inc();
        }
        put(
            &mut enc,
            "pool_peers",
            "Nodes of [pool] peers (this node included) in each state at the poller's last round; invalid: the node's /status was refused",
            &f,
        )
    }
}

impl Collector for PoolPeers {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let view = self.0.borrow().clone();
        let now = SystemTime::now();
        let f = Family::<Labels, Gauge>::default();
        for p in &view.peers {
            f.get_or_create(&vec![
                ("peer", p.url.clone()),
                ("state", p.state(now, view.max_age).as_str().to_string()),
            ])
            .set(1);
        }
        put(
            &mut enc,
            "pool_peer_state",
            "1 for each node of [pool] peers with its state at the poller's last round",
            &f,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{PeerView, PoolView};
    use prometheus_client::registry::Registry;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn counts_every_state_and_names_no_peer_text() {
        let now = SystemTime::now();
        let view = PoolView {
            max_age: Duration::from_secs(3),
            peers: vec![PeerView {
                url: "http://192.0.2.12:8080".into(),
                is_self: false,
                status: None,
                error: None,
                invalid: Some("host name `evil\\u{a}` ...".into()),
                fetched_at: now,
            }],
        };
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(view));
        let mut reg = Registry::default();
        reg.register_collector(Box::new(PoolCounts(rx.clone())));
        reg.register_collector(Box::new(PoolPeers(rx)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(out.contains("pool_peers{state=\"invalid\"} 1"), "{out}");
        assert!(out.contains("pool_peers{state=\"up\"} 0"), "{out}");
        assert!(
            out.contains("pool_peer_state{peer=\"http://192.0.2.12:8080\",state=\"invalid\"} 1"),
            "{out}"
        );
        assert!(!out.contains("evil"), "{out}");
    }
}
