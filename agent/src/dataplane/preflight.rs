//! Everything checked against the live host before anything changes. Each failure is a
//! config error (exit 2) that names the file, the key and the fix.

use super::arp::{self, ArpBackend};
use super::model::{Actual, Item, Owned};
use lvs_shared::config::NodeConfig;
use lvs_shared::ConfigError;
use std::net::{IpAddr, Ipv4Addr};

/// The desired items and the host facts they were derived from.
#[derive(Debug, Clone)]
pub struct Desired {
    pub items: Vec<Item>,
    pub rip: Option<Ipv4Addr>,
}

/// The node's own address: `real_ip`, else the interface's primary IPv4 address that is
/// not a configured VIP. Never a VIP to remove.
pub fn node_ip(cfg: &NodeConfig, actual: &Actual) -> Option<IpAddr> {
    if cfg.real_ip.is_some() {
        return cfg.real_ip;
    }
    let idx = actual.link_index(&cfg.interface)?;
    actual
        .addrs
        .iter()
        .filter(|a| a.index == idx && a.address.is_ipv4())
        .filter(|a| !cfg.vips.iter().any(|v| v.address == a.address))
        .find(|a| {
            !a.flags
                .contains(netlink_packet_route::address::AddressFlags::Secondary)
        })
        .map(|a| a.address)
}

pub fn check(cfg: &NodeConfig, actual: &Actual, owned: &Owned) -> Result<Desired, ConfigError> {
    let err =
        |key: &str, problem: String, fix: String| ConfigError::new(&cfg.file, key, problem, fix);
    let backend: &dyn ArpBackend = arp::backend(cfg.arp_method);
    let Some(nic_index) = actual.link_index(&cfg.interface) else {
        let names: Vec<&str> = actual.links.iter().map(|l| l.name.as_str()).collect();
        return Err(err(
            "interface",
            format!("no interface named `{}` on this host", cfg.interface),
            format!("set it to one of: {}", names.join(", ")),
        ));
    };
    let vip_set: Vec<IpAddr> = cfg.vips.iter().map(|v| v.address).collect();
    let owned_vips: Vec<IpAddr> = owned.vips.iter().map(|v| v.address).collect();
    let nic_v4: Vec<&super::netlink::AddrInfo> = actual
        .addrs
        .iter()
        .filter(|a| a.index == nic_index && a.address.is_ipv4())
        .collect();
    let rip = match cfg.real_ip {
        Some(IpAddr::V4(r)) => {
            if !nic_v4.iter().any(|a| a.address == IpAddr::V4(r)) {
                return Err(err(
                    "real_ip",
                    format!("{r} is not an address of `{}`", cfg.interface),
                    format!("set real_ip to an IPv4 address shown by `ip -4 addr show {}`, or leave it out", cfg.interface),
                ));
            }
            Some(r)
        }
        _ => nic_v4
            .iter()
            .filter(|a| {
                !a.flags
                    .contains(netlink_packet_route::address::AddressFlags::Secondary)
            })
            .chain(nic_v4.iter())
            .find(|a| !vip_set.contains(&a.address))
            .and_then(|a| match a.address {
                IpAddr::V4(v) => Some(v),
                _ => None,
            }),
    };
    let v4_vips: Vec<Ipv4Addr> = cfg
        .vips
        .iter()
        .filter_map(|v| match v.address {
            IpAddr::V4(a) => Some(a),
            _ => None,
        })
        .collect();
    if backend.needs_real_ip() && !v4_vips.is_empty() && rip.is_none() {
        return Err(err(
            "interface",
            format!(
                "`{}` has no IPv4 address to use as the real IP in ARP rules",
                cfg.interface
            ),
            "configure the node's address on the interface first, or set real_ip".into(),
        ));
    }
    for (i, v) in cfg.vips.iter().enumerate() {
        let key = format!("vip[{i}].address");
        if actual.link_index(&v.device).is_none() {
            return Err(err(
                &format!("vip[{i}].device"),
                format!("no device named `{}` on this host", v.device),
                "use \"lo\" or the NIC named in `interface`".into(),
            ));
        }
        if Some(v.address) == rip.map(IpAddr::V4) {
            return Err(err(
                &key,
                format!(
                    "{} is this node's real IP on `{}`",
                    v.address, cfg.interface
                ),
                "the VIP must be the pool's shared virtual address, not the node's own".into(),
            ));
        }
        let elsewhere = actual.vip_elsewhere(v);
        if !elsewhere.is_empty() && !owned_vips.contains(&v.address) {
            return Err(err(
                &key,
                format!("{} is already on `{}`, not on `{}`", v.address, elsewhere.join(", "), v.device),
                format!(
                    "remove it there first (`ip addr del {}/{} dev {}`), or set vip[{i}].device = \"{}\"",
                    v.address, v.prefix, elsewhere[0], elsewhere[0]
                ),
            ));
        }
    }
    if let Some(tool) = backend.tool() {
        if !v4_vips.is_empty() && arp::find_tool(tool).is_none() {
            let pkg = if tool == "nft" {
                "nftables"
            } else {
                "arptables"
            };
            return Err(err(
                "arp.method",
                format!(
                    "method \"{}\" needs `{tool}`, which is not installed",
                    cfg.arp_method.as_str()
                ),
                format!(
                    "install the `{pkg}` package, or use method = \"sysctl\" with the VIPs on lo"
                ),
            ));
        }
    }
    let mut items = backend.desired(&v4_vips, &cfg.interface, rip);
    items.extend(cfg.vips.iter().cloned().map(Item::Vip));
    Ok(Desired { items, rip })
}
