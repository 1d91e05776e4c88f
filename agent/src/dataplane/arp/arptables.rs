//! The OSG procedure as rules: per IPv4 VIP, `-A INPUT -d VIP -j DROP` and
//! `-A OUTPUT -s VIP -j mangle --mangle-ip-s RIP`. Only missing rules are added, never a
//! flush, and only rules this tool added are removed. Works with arptables-legacy and
//! arptables-nft; with the latter an `arp filter` table we caused is dropped when empty.

use super::{run_tool, ArpBackend};
use crate::dataplane::model::{ArpRule, Item};
use crate::dataplane::ApplyError;
use std::net::Ipv4Addr;

pub struct Arptables;

impl ArpBackend for Arptables {
    fn tool(&self) -> Option<&'static str> {
        Some("arptables")
    }

    fn needs_real_ip(&self) -> bool {
        true
    }

    fn desired(&self, vips: &[Ipv4Addr], _nic: &str, rip: Option<Ipv4Addr>) -> Vec<Item> {
        let Some(rip) = rip else { return Vec::new() };
        vips.iter()
            .flat_map(|&vip| {
                [
                    Item::ArpRule(ArpRule::DropIn { vip }),
                    Item::ArpRule(ArpRule::MangleOut { vip, rip }),
                ]
            })
            .collect()
    }
}

pub fn args(rule: &ArpRule, op: &str) -> Vec<String> {
    match rule {
        ArpRule::DropIn { vip } => vec![
            op.into(),
            "INPUT".into(),
            "-d".into(),
            vip.to_string(),
            "-j".into(),
            "DROP".into(),
        ],
        ArpRule::MangleOut { vip, rip } => vec![
            op.into(),
            "OUTPUT".into(),
            "-s".into(),
            vip.to_string(),
            "-j".into(),
            "mangle".into(),
            "--mangle-ip-s".into(),
            rip.to_string(),
        ],
    }
}

pub fn describe(rule: &ArpRule) -> String {
    format!("arptables {}", args(rule, "-A").join(" "))
}

pub fn add(rule: &ArpRule) -> Result<(), ApplyError> {
    let a = args(rule, "-A");
    run_tool(
        "arptables",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    )
    .map(|_| ())
}

pub fn del(rule: &ArpRule) -> Result<(), ApplyError> {
    let a = args(rule, "-D");
    match run_tool(
        "arptables",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    ) {
        Ok(_) => Ok(()),
        // Already gone: removal is idempotent.
        Err(_) if !list()?.contains(rule) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Our rules among the current ones. Rules with any other option are not ours and are
/// ignored. `-L -n`, not `arptables-save`: save prints `--mangle-ip-s` as a host name when
/// the real IP is in /etc/hosts (GridFTP nodes need that), and the rule would look foreign.
pub fn list() -> Result<Vec<ArpRule>, ApplyError> {
    let out = run_tool("arptables", &["-L", "-n"], None)?;
    Ok(parse_save(&listing_to_save(&out)))
}

/// Turns `arptables -L -n` (chain headers, then one rule per line) into save-style
/// `-A CHAIN ...` lines.
pub fn listing_to_save(listing: &str) -> String {
    let mut chain = "";
    let mut out = String::new();
    for line in listing.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("Chain ") {
            chain = rest.split_whitespace().next().unwrap_or("");
        } else if l.starts_with('-') && !chain.is_empty() {
            out.push_str(&format!("-A {chain} {l}\n"));
        }
    }
    out
}

pub fn parse_save(text: &str) -> Vec<ArpRule> {
    let mut rules = Vec::new();
    for line in text.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.len() < 2 || toks[0] != "-A" {
            continue;
        }
        let chain = toks[1];
        let mut opts = std::collections::BTreeMap::new();
        let mut i = 2;
        let mut ok = true;
        while i < toks.len() {
            if i + 1 >= toks.len() {
                ok = false;
                break;
            }
            opts.insert(toks[i], toks[i + 1].trim_end_matches("/32"));
            i += 2;
        }
        if !ok {
            continue;
        }
        let ip = |k: &str| opts.get(k).and_then(|v| v.parse::<Ipv4Addr>().ok());
        let keys: Vec<&&str> = opts.keys().collect();
        match (chain, keys.as_slice()) {
            ("INPUT", [a, b]) if **a == "-d" && **b == "-j" && opts["-j"] == "DROP" => {
                if let Some(vip) = ip("-d") {
                    rules.push(ArpRule::DropIn { vip });
                }
            }
            ("OUTPUT", [a, b, c])
                if **a == "--mangle-ip-s"
                    && **b == "-j"
                    && **c == "-s"
                    && opts["-j"] == "mangle" =>
            {
                if let (Some(vip), Some(rip)) = (ip("-s"), ip("--mangle-ip-s")) {
                    rules.push(ArpRule::MangleOut { vip, rip });
                }
            }
            _ => {}
        }
    }
    rules
}

/// arptables-nft keeps its rules in nftables' `table arp filter`. The alternatives link
/// names the variant (`arptables-nft`, `xtables-nft-multi`), which spares a process.
pub fn is_nft_variant() -> bool {
    match super::find_tool("arptables").and_then(|p| std::fs::canonicalize(p).ok()) {
        Some(real) => {
            let name = real.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.contains("nft") {
                return true;
            }
            if name.contains("legacy") {
                return false;
            }
            run_tool("arptables", &["-V"], None)
                .map(|v| v.contains("nf_tables"))
                .unwrap_or(false)
        }
        None => false,
    }
}

pub fn filter_table_exists() -> bool {
    super::find_tool("nft").is_some()
        && run_tool("nft", &["list", "table", "arp", "filter"], None).is_ok()
}

/// Drops `table arp filter` only when no chain holds a rule (arptables-nft leaves empty
/// chains behind after the last `-D`).
pub fn drop_filter_table_if_empty() -> Result<(), ApplyError> {
    let Ok(listing) = run_tool("nft", &["list", "table", "arp", "filter"], None) else {
        return Ok(());
    };
    let has_rules = listing.lines().map(str::trim).any(|l| {
        !l.is_empty()
            && !l.starts_with("table ")
            && !l.starts_with("chain ")
            && !l.starts_with("type ")
            && l != "}"
    });
    if has_rules {
        return Ok(());
    }
    run_tool("nft", &["delete", "table", "arp", "filter"], None).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numeric_listing() {
        let l = "Chain INPUT (policy ACCEPT)\n-j DROP -d 10.0.0.1 \n\nChain OUTPUT (policy ACCEPT)\n-j mangle -s 10.0.0.1 --mangle-ip-s 192.0.2.11 \n\nChain FORWARD (policy ACCEPT)\n";
        let r = parse_save(&listing_to_save(l));
        assert_eq!(
            r,
            vec![
                ArpRule::DropIn {
                    vip: "10.0.0.1".parse().unwrap()
                },
                ArpRule::MangleOut {
                    vip: "10.0.0.1".parse().unwrap(),
                    rip: "192.0.2.11".parse().unwrap()
                }
            ]
        );
    }

    #[test]
    fn parses_both_variants() {
        let legacy = "*filter\n:INPUT ACCEPT\n-A INPUT -j DROP -d 192.0.2.100 \n-A OUTPUT -j mangle -s 192.0.2.100 --mangle-ip-s 192.0.2.11 \n-A INPUT -j DROP -d 192.0.2.9 -i eth1\n";
        let r = parse_save(legacy);
        assert_eq!(
            r,
            vec![
                ArpRule::DropIn {
                    vip: "192.0.2.100".parse().unwrap()
                },
                ArpRule::MangleOut {
                    vip: "192.0.2.100".parse().unwrap(),
                    rip: "192.0.2.11".parse().unwrap()
                }
            ]
        );
    }
}
