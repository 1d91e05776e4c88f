//! The built-in data plane check: every VIP present on its device (and not tentative or
//! dadfailed), the device up, and ARP suppression intact. It is evaluated by the daemon's
//! data plane loop (on every rtnetlink event and on the recheck interval), not on a timer
//! of its own, so a deleted VIP turns the node down at once.

use crate::health::VipView;
use futures::TryStreamExt;
use lvs_shared::config::{ArpMethod, NodeConfig};
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use std::collections::HashMap;
use std::net::IpAddr;

pub struct Observation {
    pub vips: Vec<VipView>,
    pub arp_suppressed: bool,
    /// Ok(summary) or Err(first problem): the check result.
    pub result: Result<String, String>,
}

/// Looks at the host through rtnetlink (and the lead's `dataplane::observe` when the agent
/// manages the data plane).
pub async fn observe(handle: &rtnetlink::Handle, cfg: &NodeConfig, managed: bool) -> Observation {
    let own = own_view(handle, cfg).await;
    let (vips, mut problem) = match own {
        Ok(v) => {
            let p = v.iter().find(|v| !v.present).map(|v| v.detail.clone());
            (v, p)
        }
        Err(e) => (Vec::new(), Some(format!("cannot read addresses: {e}"))),
    };
    let arp_suppressed = if managed {
        match crate::dataplane::observe(cfg).await {
            Ok(st) => {
                if problem.is_none() && !st.converged() {
                    problem = st.items.iter().find(|i| !i.ok).map(|i| {
                        format!("{} {}: {} (want {})", i.kind, i.name, i.actual, i.desired)
                    });
                }
                st.suppression_ok()
            }
            Err(e) => {
                problem.get_or_insert(format!("data plane: {e}"));
                false
            }
        }
    } else {
        match sysctl_suppression(cfg) {
            Ok(()) => true,
            Err(e) => {
                problem.get_or_insert(e);
                false
            }
        }
    };
    let result = match problem {
        Some(p) => Err(p),
        None => Ok(format!("{} VIP(s) present, ARP suppressed", vips.len())),
    };
    Observation {
        vips,
        arp_suppressed,
        result,
    }
}

async fn own_view(handle: &rtnetlink::Handle, cfg: &NodeConfig) -> Result<Vec<VipView>, String> {
    let links: Vec<_> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut by_index: HashMap<u32, (String, bool)> = HashMap::new();
    for l in links {
        let name = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(n) = name {
            by_index.insert(l.header.index, (n, l.header.flags.contains(LinkFlags::Up)));
        }
    }
    let addrs: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut seen: Vec<(IpAddr, u32, bool, bool)> = Vec::new();
    for a in addrs {
        let ip = a
            .attributes
            .iter()
            .find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            })
            .or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
        let flags = a
            .attributes
            .iter()
            .find_map(|x| match x {
                AddressAttribute::Flags(f) => Some(*f),
                _ => None,
            })
            .unwrap_or_else(|| AddressFlags::from_bits_retain(a.header.flags.bits() as u32));
        if let Some(ip) = ip {
            seen.push((
                ip,
                a.header.index,
                flags.contains(AddressFlags::Tentative),
                flags.contains(AddressFlags::Dadfailed),
            ));
        }
    }
    Ok(cfg
        .vips
        .iter()
        .map(|v| {
            let hit = seen.iter().find(|(ip, idx, _, _)| {
                *ip == v.address && by_index.get(idx).is_some_and(|(n, _)| *n == v.device)
            });
            let dev_up = by_index.values().any(|(n, up)| *n == v.device && *up);
            let (present, detail) = match hit {
                None => (false, format!("VIP {} missing on {}", v.address, v.device)),
                Some((_, _, _, true)) => (false, format!("VIP {} dadfailed", v.address)),
                Some((_, _, true, _)) => (false, format!("VIP {} tentative", v.address)),
                Some(_) if !dev_up => (false, format!("{} is down", v.device)),
                Some(_) => (true, "present".into()),
            };
            VipView {
                address: v.address.to_string(),
                present,
                detail,
            }
        })
        .collect())
}

/// Unmanaged mode with the sysctl method: the kernel uses max(all, NIC) for both knobs.
fn sysctl_suppression(cfg: &NodeConfig) -> Result<(), String> {
    if cfg.arp_method != ArpMethod::Sysctl || !cfg.vips.iter().any(|v| v.is_v4()) {
        return Ok(());
    }
    let read = |iface: &str, knob: &str| -> i64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{iface}/{knob}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let ignore = read("all", "arp_ignore").max(read(&cfg.interface, "arp_ignore"));
    let announce = read("all", "arp_announce").max(read(&cfg.interface, "arp_announce"));
    if ignore < 1 || announce < 2 {
        return Err(format!(
            "ARP not suppressed on {}: arp_ignore={ignore} arp_announce={announce} (want 1 and 2)",
            cfg.interface
        ));
    }
    Ok(())
}
