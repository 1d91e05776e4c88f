//! The `/status` document. One serde type, [`StatusDoc`], is both what the report endpoint
//! serves and what its readers parse (the pool poller, `lvs-node pool status`,
//! `director-config --pool`), so the server and its readers cannot drift. This node builds
//! it in `health::status`; a peer's copy is untrusted and is only used through the
//! validated view in [`super::peer`].
//!
//! Besides the agent's health snapshot it carries what a pool-wide view needs: the node's
//! addresses and report endpoints, its VIPs and ports, the failing checks with their
//! reasons, and the expiry of the certificates its `certificate` checks watch.

use super::state::{AdminState, CheckStatus, Load, NodeState, VipView};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDoc {
    pub state: NodeState,
    pub admin: AdminState,
    /// Why the node is down (the first failing check), if it is.
    pub reason: Option<String>,
    /// Weight advertised to directors now (0 unless up).
    pub weight: u32,
    /// Weight of an idle node (`[weight] base`).
    pub base_weight: u32,
    pub load: Load,
    pub checks: Vec<CheckStatus>,
    pub vips: Vec<VipView>,
    pub arp_suppressed: bool,
    pub repairs_total: u64,
    pub last_repair_ms: Option<f64>,
    /// Why the last SIGHUP was refused (the old config stays in force), or None.
    #[serde(default)]
    pub reload_error: Option<String>,
    pub version: String,
    /// Where this node is and what it serves.
    #[serde(default)]
    pub node: NodeInfo,
    /// Every check that is not up, with its reason.
    #[serde(default)]
    pub failing: Vec<FailingCheck>,
    /// The certificates watched by `certificate` checks.
    #[serde(default)]
    pub certificates: Vec<CertExpiry>,
    /// Admin ready, and every failing check is `shared` (at least one fails): the node
    /// may be held in by `[pool] depool_threshold`. Peers count candidates from this.
    #[serde(default)]
    pub shared_failure: bool,
    /// The node serves although its shared checks fail, because depooling it would leave
    /// fewer nodes serving than `[pool] depool_threshold` (`reason` says which check).
    #[serde(default)]
    pub held: bool,
    /// XrdMacaroons' secret: its fingerprint, never the secret (`[report] macaroon_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macaroon: Option<MacaroonSecret>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MacaroonSecret {
    pub path: String,
    /// 16 hex digits; None when the file cannot be read (see `error`).
    pub fingerprint: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    /// The host name of the node (not the VIP hostname).
    pub hostname: String,
    /// The IPv4 address directors send to (`real_ip`, else the report endpoint's).
    pub real_ip: Option<IpAddr>,
    /// The node's global IPv6 address on its interface, for IPv6 VIPs.
    pub real_ip6: Option<IpAddr>,
    /// `[report] http` and `[report] agent_check`.
    pub report_http: Option<SocketAddr>,
    pub agent_check: Option<SocketAddr>,
    /// `[report] http6`: the same endpoint on the node's IPv6 address.
    #[serde(default)]
    pub report_http6: Option<SocketAddr>,
    /// `[weight] base`: what a director should configure as the static weight.
    pub base_weight: u32,
    pub services: Vec<Service>,
    /// The `[[redirect]]` listeners and where each sends requests when this node is
    /// chosen (what `choose = "pool"` on another node redirects to).
    #[serde(default)]
    pub redirects: Vec<RedirectTarget>,
    /// `[bfd]`, so `director-config --bfd` can write the director's side; None without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdInfo>,
}

/// The node's BFD settings as a director needs them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BfdInfo {
    /// The address the sessions run from: the director's `neighbor_ip`.
    pub source: IpAddr,
    /// The directors this node accepts packets from.
    pub directors: Vec<IpAddr>,
    pub min_tx_ms: f64,
    pub min_rx_ms: f64,
    pub multiplier: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RedirectTarget {
    pub listen: SocketAddr,
    pub target: String,
}

/// One VIP and the TCP ports served on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Service {
    pub vip: IpAddr,
    pub hostname: Option<String>,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailingCheck {
    pub name: String,
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertExpiry {
    /// The `certificate` check that watches it.
    pub check: String,
    pub path: String,
    /// Unix seconds; None when the file cannot be read or parsed (see `error`).
    pub not_after: Option<i64>,
    pub days_left: Option<i64>,
    pub error: Option<String>,
}

impl StatusDoc {
    /// A document with only a state, admin state and weight (base 100), for unit tests.
    #[cfg(test)]
    pub fn sample(state: NodeState, admin: super::state::Admin, weight: u32) -> StatusDoc {
        StatusDoc {
            state,
            admin: AdminState {
                admin,
                ..AdminState::default()
            },
            reason: None,
            weight,
            base_weight: 100,
            load: Load::default(),
            checks: Vec::new(),
            vips: Vec::new(),
            arp_suppressed: true,
            repairs_total: 0,
            last_repair_ms: None,
            reload_error: None,
            version: "t".into(),
            node: Default::default(),
            failing: Vec::new(),
            certificates: Vec::new(),
            shared_failure: false,
            held: false,
            macaroon: None,
        }
    }

    /// The earliest certificate expiry, in days (negative: expired).
    pub fn cert_days_left(&self) -> Option<i64> {
        self.certificates.iter().filter_map(|c| c.days_left).min()
    }
}
