//! `pool.tls`: whether this node reads its peers' `/status` in a way a spoofer cannot
//! answer. A plain `http://` peer is believed by its address alone: whoever answers on it
//! (root on that node, a local user who binds the port while the agent is stopped, anyone
//! who can spoof the address on the LAN) feeds this node's pool view, its redirects and the
//! directors' configs. Config only: no connection is made.

use super::Finding;
use lvs_shared::config::NodeConfig;

pub const ID: &str = "pool.tls";

pub fn findings(cfg: &NodeConfig) -> Vec<Finding> {
    let p = &cfg.daemon.pool;
    if p.peers.is_empty() {
        return Vec::new();
    }
    // This node's own entry is read from its health state, never over the network.
    let own = p
        .self_url
        .clone()
        .or_else(|| cfg.daemon.report.http.map(|a| format!("http://{a}")));
    let plain: Vec<&str> = p
        .peers
        .iter()
        .filter(|u| u.starts_with("http://") && Some(*u) != own.as_ref())
        .map(String::as_str)
        .collect();
    if !plain.is_empty() {
        return vec![Finding::warn(
            ID,
            format!(
                "pool reads are plain HTTP for {} of {} peers ({})",
                plain.len(),
                p.peers.len(),
                plain.join(", ")
            ),
            "A plain http:// peer is believed by its address alone: whoever answers there \
             (a local user on that node while its agent is stopped, or a spoofer on the LAN) \
             decides what this node and the directors' configs see of it.",
            "on every node: [report] https = \"REAL_IP:8443\", tls_cert and tls_key = the host \
             certificate and key; here: list the peers as https://HOSTNAME:8443, with [pool] ca = \
             \"/etc/grid-security/certificates\" (and [pool] cert/key plus the peers' [report] \
             client_ca and allow_clients to authenticate this node to them); see docs/security.md",
        )];
    }
    let mut detail = format!("{} peer(s), all https://", p.peers.len());
    if p.ca.is_none() {
        detail.push_str(", verified against the system's CA roots ([pool] ca not set)");
    }
    vec![Finding::ok(
        ID,
        "pool reads verify the peers' certificates",
        detail,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::doctor::Severity;

    fn cfg(pool: &str) -> NodeConfig {
        NodeConfig::parse(
            std::path::Path::new("/etc/lvs-node/node.toml"),
            &format!(
                "interface = \"eth0\"\nreal_ip = \"192.0.2.11\"\n[[vip]]\naddress = \"192.0.2.100\"\nports = [2811]\n\
                 [report]\nhttp = \"192.0.2.11:8080\"\n[pool]\n{pool}\n"
            ),
        )
        .unwrap()
    }

    #[test]
    fn plain_http_peers_are_a_warning_with_the_fix() {
        let f = findings(&cfg(
            "peers = [\"http://192.0.2.11:8080\", \"http://192.0.2.12:8080\"]",
        ));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].id.as_str(), f[0].severity), (ID, Severity::Warn));
        // This node's own plain entry is not a network read.
        assert!(f[0].summary.contains("1 of 2"), "{}", f[0].summary);
        assert!(f[0].fix.as_deref().unwrap().contains("[pool] ca"));
        let f = findings(&cfg(
            "peers = [\"https://n1.example.org:8443\", \"https://n2.example.org:8443\"]\nself = \"https://n1.example.org:8443\"",
        ));
        assert_eq!(f[0].severity, Severity::Ok, "{f:?}");
        assert!(findings(&cfg("")).is_empty());
    }
}
