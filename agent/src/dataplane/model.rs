//! What the data plane manages: items (desired), what the host has (actual) and what this
//! tool created (owned, persisted in state_dir so `down` restores the host exactly).

use super::netlink::{AddrInfo, LinkInfo};
use lvs_shared::config::Vip;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// One arptables rule in the OSG form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArpRule {
    /// `-A INPUT -d VIP -j DROP`: never answer a request for the VIP.
    DropIn { vip: Ipv4Addr },
    /// `-A OUTPUT -s VIP -j mangle --mangle-ip-s RIP`: the kernel's own ARP says "tell RIP".
    MangleOut { vip: Ipv4Addr, rip: Ipv4Addr },
}

/// Our own nftables table in the arp family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftTable {
    pub vips: Vec<Ipv4Addr>,
    pub rip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Sysctl { key: String, value: String },
    ArpRule(ArpRule),
    NftTable(NftTable),
    Vip(Vip),
}

impl Item {
    pub fn is_vip(&self) -> bool {
        matches!(self, Item::Vip(_))
    }
}

/// What this tool created or changed, recorded before each change (write-ahead), so a
/// crash between steps leaves a record that the next `up` or `down` completes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Owned {
    #[serde(default)]
    pub version: u32,
    /// Sysctl values before our first change: `down` writes them back.
    #[serde(default)]
    pub sysctl_orig: BTreeMap<String, String>,
    #[serde(default)]
    pub vips: Vec<Vip>,
    #[serde(default)]
    pub arp_rules: Vec<ArpRule>,
    /// arptables-nft created `table arp filter` for our rules; drop it when it is empty again.
    #[serde(default)]
    pub arp_filter_table: bool,
    #[serde(default)]
    pub nft_table: bool,
}

impl Owned {
    pub fn is_empty(&self) -> bool {
        self.sysctl_orig.is_empty()
            && self.vips.is_empty()
            && self.arp_rules.is_empty()
            && !self.arp_filter_table
            && !self.nft_table
    }
}

/// The host as observed. Tools are only asked when an item needs them.
#[derive(Debug, Clone, Default)]
pub struct Actual {
    pub links: Vec<LinkInfo>,
    pub addrs: Vec<AddrInfo>,
    pub sysctls: BTreeMap<String, String>,
    /// None: arptables was not consulted.
    pub arp_rules: Option<Vec<ArpRule>>,
    pub arp_filter_table: Option<bool>,
    /// None: no table; Some: its parsed content and the raw listing (for undo).
    pub nft: Option<(NftTable, String)>,
}

impl Actual {
    pub fn link_index(&self, name: &str) -> Option<u32> {
        self.links.iter().find(|l| l.name == name).map(|l| l.index)
    }

    pub fn link_name(&self, index: u32) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.as_str())
    }

    /// The kernel's record of this VIP on its desired device, if present. An IPv4 address
    /// is one per (address, prefix) on a device: the same address with another prefix is
    /// another address (`other_forms`). IPv6 holds one per address and device.
    pub fn vip_addr(&self, vip: &Vip) -> Option<&AddrInfo> {
        let idx = self.link_index(&vip.device)?;
        self.addrs.iter().find(|a| {
            a.address == vip.address && a.index == idx && (!vip.is_v4() || a.prefix == vip.prefix)
        })
    }

    /// The VIP's address on its device with another prefix (IPv4 only), with its flags.
    pub fn other_forms(&self, vip: &Vip) -> Vec<(Vip, u32)> {
        let Some(idx) = self.link_index(&vip.device) else {
            return Vec::new();
        };
        self.addrs
            .iter()
            .filter(|a| {
                vip.is_v4() && a.address == vip.address && a.index == idx && a.prefix != vip.prefix
            })
            .map(|a| {
                (
                    Vip {
                        prefix: a.prefix,
                        ..vip.clone()
                    },
                    a.flags.bits(),
                )
            })
            .collect()
    }

    /// Devices other than `vip.device` that hold the VIP's address.
    pub fn vip_elsewhere(&self, vip: &Vip) -> Vec<String> {
        let idx = self.link_index(&vip.device);
        self.addrs
            .iter()
            .filter(|a| a.address == vip.address && Some(a.index) != idx)
            .map(|a| self.link_name(a.index).unwrap_or("?").to_string())
            .collect()
    }
}
