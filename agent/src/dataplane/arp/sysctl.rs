//! `arp_ignore=1`: answer ARP only for addresses on the receiving interface, so a VIP on
//! `lo` stays hidden. `arp_announce=2`: the kernel's own ARP requests use the best local
//! address (the real IP), never the VIP. The kernel uses max(all, NIC), so both are set.

use super::ArpBackend;
use crate::dataplane::model::Item;
use std::net::Ipv4Addr;

pub struct Sysctl;

pub const IGNORE: &str = "1";
pub const ANNOUNCE: &str = "2";

impl ArpBackend for Sysctl {
    fn tool(&self) -> Option<&'static str> {
        None
    }

    fn needs_real_ip(&self) -> bool {
        false
    }

    fn desired(&self, vips: &[Ipv4Addr], nic: &str, _rip: Option<Ipv4Addr>) -> Vec<Item> {
        if vips.is_empty() {
            return Vec::new();
        }
        let mut v = Vec::new();
        for dev in ["all", nic] {
            v.push(Item::Sysctl {
                key: format!("net/ipv4/conf/{dev}/arp_ignore"),
                value: IGNORE.into(),
            });
            v.push(Item::Sysctl {
                key: format!("net/ipv4/conf/{dev}/arp_announce"),
                value: ANNOUNCE.into(),
            });
        }
        v
    }
}

/// A stricter value than ours also hides the VIP: arp_ignore 2, 3 and 8 do. Leaving it
/// alone avoids loosening an admin's setting.
pub fn satisfied(key: &str, actual: &str, desired: &str) -> bool {
    if actual == desired {
        return true;
    }
    key.ends_with("/arp_ignore") && matches!(actual, "2" | "3" | "8")
}
