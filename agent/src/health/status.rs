//! This node's `/status` document ([`StatusDoc`]), built from the health snapshot and the
//! running config. The report endpoint serves it; the pool poller uses it for this node
//! instead of asking itself over HTTP.

use super::Snapshot;
use crate::wire::status::{
    BfdInfo, CertExpiry, FailingCheck, MacaroonSecret, NodeInfo, RedirectTarget, Service, StatusDoc,
};
use lvs_shared::config::NodeConfig;
use std::net::IpAddr;

/// The document for this node now, from the snapshot and the config only: no file is read
/// here (the `certificate` checks keep what they read in the snapshot).
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
        certificates: certificates(snap, now),
        shared_failure: snap.shared_failure,
        held: snap.held,
        macaroon: snap.macaroon.as_ref().map(|m| MacaroonSecret {
            path: m.path.clone(),
            fingerprint: m.fingerprint.clone(),
            error: m.error.clone(),
        }),
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
            let fqdn = crate::util::host::node_fqdn();
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

fn certificates(snap: &Snapshot, now: i64) -> Vec<CertExpiry> {
    snap.certificates
        .iter()
        .map(|f| CertExpiry {
            check: f.check.clone(),
            path: f.path.clone(),
            not_after: f.not_after,
            days_left: f.not_after.map(|t| (t - now).div_euclid(86400)),
            error: f.error.clone(),
        })
        .collect()
}
