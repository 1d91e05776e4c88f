//! Reads the host: links and addresses over netlink; sysctls, arptables rules and our
//! nftables table only when a desired or owned item needs them (no tool is spawned for
//! nothing, and a host without arptables is fine with method sysctl).

use super::arp::{arptables, find_tool, nftables};
use super::model::{Actual, Item, Owned};
use super::netlink::Netlink;
use super::{sysctl, ApplyError};

pub async fn links_and_addrs(nl: &Netlink) -> Result<Actual, ApplyError> {
    Ok(Actual {
        links: nl.links().await?,
        addrs: nl.addresses().await?,
        ..Actual::default()
    })
}

pub fn tools(actual: &mut Actual, desired: &[Item], owned: &Owned) -> Result<(), ApplyError> {
    let mut keys: Vec<&str> = owned.sysctl_orig.keys().map(String::as_str).collect();
    for it in desired {
        if let Item::Sysctl { key, .. } = it {
            keys.push(key);
        }
    }
    for k in keys {
        if !actual.sysctls.contains_key(k) {
            actual.sysctls.insert(k.to_string(), sysctl::read(k)?);
        }
    }
    let want_arp = desired.iter().any(|i| matches!(i, Item::ArpRule(_)))
        || !owned.arp_rules.is_empty()
        || owned.arp_filter_table;
    if want_arp && find_tool("arptables").is_some() {
        let rules = arptables::list()?;
        // Whether arptables-nft's `table arp filter` exists matters only when our first
        // rule may create it, or when we recorded creating it.
        let first_rule = owned.arp_rules.is_empty()
            && desired
                .iter()
                .any(|i| matches!(i, Item::ArpRule(r) if !rules.contains(r)));
        if first_rule || owned.arp_filter_table {
            actual.arp_filter_table =
                Some(arptables::is_nft_variant() && arptables::filter_table_exists());
        }
        actual.arp_rules = Some(rules);
    }
    let want_nft = desired.iter().any(|i| matches!(i, Item::NftTable(_))) || owned.nft_table;
    if want_nft && find_tool("nft").is_some() {
        actual.nft = nftables::observe()?;
    }
    Ok(())
}
