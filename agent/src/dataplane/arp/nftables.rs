//! One table of our own, `table arp lvs_node`: drop ARP requests for the VIPs on input and
//! rewrite the sender address of the kernel's own ARP from a VIP to the real IP on output.
//! Replaced atomically in one `nft -f` transaction; deleted on `down`; no other table is
//! touched.

use super::{run_tool, ArpBackend};
use crate::dataplane::model::{Item, NftTable};
use crate::dataplane::ApplyError;
use std::net::Ipv4Addr;

pub const TABLE: &str = "lvs_node";

pub struct Nftables;

impl ArpBackend for Nftables {
    fn tool(&self) -> Option<&'static str> {
        Some("nft")
    }

    fn needs_real_ip(&self) -> bool {
        true
    }

    fn desired(&self, vips: &[Ipv4Addr], _nic: &str, rip: Option<Ipv4Addr>) -> Vec<Item> {
        match rip {
            Some(rip) if !vips.is_empty() => {
                let mut vips = vips.to_vec();
                vips.sort();
                vec![Item::NftTable(NftTable { vips, rip })]
            }
            _ => Vec::new(),
        }
    }
}

pub fn render(t: &NftTable) -> String {
    let elems: Vec<String> = t.vips.iter().map(|v| v.to_string()).collect();
    format!(
        "table arp {TABLE} {{\n\
         \tset vips {{\n\t\ttype ipv4_addr\n\t\telements = {{ {elems} }}\n\t}}\n\
         \tchain in {{\n\t\ttype filter hook input priority filter; policy accept;\n\
         \t\tarp operation request arp daddr ip @vips drop\n\t}}\n\
         \tchain out {{\n\t\ttype filter hook output priority filter; policy accept;\n\
         \t\tarp saddr ip @vips arp saddr ip set {rip}\n\t}}\n}}\n",
        elems = elems.join(", "),
        rip = t.rip
    )
}

/// `table` then `delete table` then the new table: one transaction that works whether or
/// not the table exists, so there is no moment without suppression.
pub fn replace_script(body: &str) -> String {
    format!("table arp {TABLE}\ndelete table arp {TABLE}\n{body}")
}

/// Installs the table: created directly when absent (no delete in the transaction: deleting
/// nftables objects waits for an RCU grace period, 12-25 ms), replaced atomically otherwise.
pub fn replace(t: &NftTable, exists: bool) -> Result<(), ApplyError> {
    let body = render(t);
    let script = if exists { replace_script(&body) } else { body };
    run_tool("nft", &["-f", "-"], Some(&script)).map(|_| ())
}

/// Puts back a previous listing (rollback).
pub fn restore(raw: &str) -> Result<(), ApplyError> {
    run_tool("nft", &["-f", "-"], Some(&replace_script(raw))).map(|_| ())
}

pub fn delete() -> Result<(), ApplyError> {
    match run_tool("nft", &["delete", "table", "arp", TABLE], None) {
        Ok(_) => Ok(()),
        Err(_) if observe()?.is_none() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The table's content as (parsed, raw listing), or None when absent.
pub fn observe() -> Result<Option<(NftTable, String)>, ApplyError> {
    let raw = match run_tool("nft", &["list", "table", "arp", TABLE], None) {
        Ok(r) => r,
        Err(e) if e.0.contains("No such file") || e.0.contains("does not exist") => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(Some((parse(&raw), raw)))
}

/// Reads back the VIP set and the real IP from a listing. A hand-edited table that does
/// not match `render` parses to something that differs from the desired table, so the
/// next `up` replaces it.
pub fn parse(raw: &str) -> NftTable {
    let mut vips = Vec::new();
    let mut rip = Ipv4Addr::UNSPECIFIED;
    let mut in_elems = false;
    let mut has_drop = false;
    for line in raw.lines().map(str::trim) {
        if line.starts_with("elements = {") {
            in_elems = true;
        }
        if in_elems {
            let part = line.trim_start_matches("elements = {");
            for tok in part.split([',', ' ', '}']) {
                if let Ok(ip) = tok.trim().parse::<Ipv4Addr>() {
                    vips.push(ip);
                }
            }
            if line.ends_with('}') {
                in_elems = false;
            }
        }
        if line == "arp operation request arp daddr ip @vips drop" {
            has_drop = true;
        }
        if let Some(r) = line.strip_prefix("arp saddr ip @vips arp saddr ip set ") {
            rip = r.trim().parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
        }
    }
    if !has_drop {
        vips.clear();
    }
    vips.sort();
    NftTable { vips, rip }
}
