//! The `/status` document. One serde type, [`StatusDoc`], is both what the report endpoint
//! serves and what its readers parse (the pool poller, `lvs-node pool status`,
//! `director-config --pool`), so the server and its readers cannot drift.
//!
//! Besides the agent's health snapshot it carries what a pool-wide view needs: the node's
//! addresses and report endpoints, its VIPs and ports, the failing checks with their
//! reasons, and the expiry of the certificates its `certificate` checks watch.

use crate::health::{AdminState, CheckStatus, Load, NodeState, Snapshot, VipView};
use lvs_shared::config::check::CheckKind;
use lvs_shared::config::NodeConfig;
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
    /// The document for this node now. Reads the watched certificates (small files, read
    /// only when /status is asked for).
    pub fn build(snap: &Snapshot, cfg: &NodeConfig) -> StatusDoc {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        StatusDoc {
            state: snap.state,
            admin: snap.admin.clone(),
            reason: snap.reason.clone(),
            weight: snap.weight,
            base_weight: snap.base_weight,
            load: snap.load.clone(),
            checks: snap.checks.clone(),
            vips: snap.vips.clone(),
            arp_suppressed: snap.arp_suppressed,
            repairs_total: snap.repairs_total,
            last_repair_ms: snap.last_repair_ms,
            reload_error: snap.reload_error.clone(),
            version: snap.version.to_string(),
            node: node_info(cfg),
            failing: snap
                .checks
                .iter()
                .filter(|c| c.up != Some(true))
                .map(|c| FailingCheck {
                    name: c.name.clone(),
                    kind: c.kind.clone(),
                    reason: c.detail.clone(),
                })
                .collect(),
            certificates: certificates(cfg, now),
        }
    }

    /// A document with only a state, admin state and weight (base 100), for unit tests.
    #[cfg(test)]
    pub fn sample(state: NodeState, admin: crate::health::Admin, weight: u32) -> StatusDoc {
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
        }
    }

    /// The earliest certificate expiry, in days (negative: expired).
    pub fn cert_days_left(&self) -> Option<i64> {
        self.certificates.iter().filter_map(|c| c.days_left).min()
    }
}

pub fn node_info(cfg: &NodeConfig) -> NodeInfo {
    let rep = &cfg.daemon.report;
    let real_ip = cfg
        .real_ip
        .filter(|i| i.is_ipv4())
        .or(rep.http.map(|a| a.ip()).filter(|i| i.is_ipv4()))
        .or(rep.agent_check.map(|a| a.ip()).filter(|i| i.is_ipv4()));
    let vips: Vec<IpAddr> = cfg.vips.iter().map(|v| v.address).collect();
    let real_ip6 = cfg
        .real_ip6
        .or(cfg.real_ip.filter(|i| i.is_ipv6()))
        .or(rep.http.map(|a| a.ip()).filter(|i| i.is_ipv6()))
        .or(rep.http6.map(|a| a.ip()))
        .or_else(|| global_ipv6(&cfg.interface, &vips));
    NodeInfo {
        hostname: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
        real_ip,
        real_ip6,
        report_http: rep.http,
        agent_check: rep.agent_check,
        report_http6: rep.http6,
        base_weight: cfg.daemon.weight.base,
        services: cfg
            .vips
            .iter()
            .map(|v| Service {
                vip: v.address,
                hostname: v.hostname.clone(),
                ports: v.ports.clone(),
            })
            .collect(),
        redirects: {
            let fqdn = crate::redirect::node_fqdn();
            cfg.redirects
                .iter()
                .map(|r| RedirectTarget {
                    listen: r.listen,
                    target: r.target_base(&fqdn),
                })
                .collect()
        },
        bfd: cfg.bfd.as_ref().map(|b| BfdInfo {
            source: b.source,
            directors: b.directors.clone(),
            min_tx_ms: b.min_tx.as_secs_f64() * 1000.0,
            min_rx_ms: b.min_rx.as_secs_f64() * 1000.0,
            multiplier: b.multiplier,
        }),
    }
}

/// The first global IPv6 address on `interface` that is not a VIP.
fn global_ipv6(interface: &str, vips: &[IpAddr]) -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        if a.interface_name != interface {
            continue;
        }
        let Some(v6) = a.address.as_ref().and_then(|s| s.as_sockaddr_in6()) else {
            continue;
        };
        let ip = v6.ip();
        let link_local = (ip.segments()[0] & 0xffc0) == 0xfe80;
        if ip.is_loopback() || ip.is_unspecified() || link_local || ip.is_multicast() {
            continue;
        }
        if vips.contains(&IpAddr::V6(ip)) {
            continue;
        }
        return Some(IpAddr::V6(ip));
    }
    None
}

fn certificates(cfg: &NodeConfig, now: i64) -> Vec<CertExpiry> {
    cfg.daemon
        .checks
        .iter()
        .filter_map(|c| match &c.kind {
            CheckKind::Certificate { cert, .. } => Some((c.name.clone(), cert.clone())),
            _ => None,
        })
        .map(|(check, path)| {
            let parsed = std::fs::read(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|d| crate::checks::certificate::parse(&d));
            match parsed {
                Ok(info) => CertExpiry {
                    check,
                    path: path.display().to_string(),
                    not_after: Some(info.not_after),
                    days_left: Some((info.not_after - now).div_euclid(86400)),
                    error: None,
                },
                Err(e) => CertExpiry {
                    check,
                    path: path.display().to_string(),
                    not_after: None,
                    days_left: None,
                    error: Some(e),
                },
            }
        })
        .collect()
}
