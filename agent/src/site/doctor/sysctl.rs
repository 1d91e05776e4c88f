//! `rp_filter`, `arp_announce`, `arp_ignore`: kernel settings that break DR, read from
//! /proc/sys (per network namespace). The kernel uses max(all, NIC) for all three.

use super::Finding;
use crate::dataplane::Status;
use lvs_shared::config::{ArpMethod, NodeConfig};

fn read(key: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{key}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// (all, nic, effective = max) for one per-interface key.
fn pair(nic: &str, name: &str) -> Option<(u32, u32, u32)> {
    let a = read(&format!("all/{name}"))?;
    let n = read(&format!("{nic}/{name}"))?;
    Some((a, n, a.max(n)))
}

pub fn findings(cfg: &NodeConfig, status: Option<&Status>) -> Vec<Finding> {
    let nic = cfg.interface.as_str();
    let mut out = vec![rp_filter(nic)];
    let has_v4 = cfg.vips.iter().any(|v| v.is_v4());
    out.push(arp_announce(cfg, nic, has_v4, status));
    out.push(arp_ignore(cfg, nic, has_v4));
    out
}

fn rp_filter(nic: &str) -> Finding {
    const ID: &str = "rp_filter";
    let Some((a, n, eff)) = pair(nic, "rp_filter") else {
        return Finding::warn(
            ID,
            format!("cannot read rp_filter for all/{nic}"),
            "net.ipv4.conf.*.rp_filter is not readable (is the interface name right?)",
            format!("check `sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.{nic}.rp_filter`"),
        );
    };
    let values = format!("all={a}, {nic}={n}, effective={eff} (the kernel uses the maximum)");
    match eff {
        1 => Finding::warn(
            ID,
            format!("strict reverse-path filtering (rp_filter=1) on {nic}"),
            format!(
                "{values}\nStrict mode drops a packet when the route back to its source does not \
                 leave through the interface it came in on. In DR, client packets to the VIP arrive \
                 on {nic} from the director's MAC with the client's source address; if the node \
                 routes to that client through another interface (a second NIC, a management \
                 network, a default route elsewhere, policy routing), every connection to the VIP \
                 is dropped silently while the director's checks still pass."
            ),
            format!(
                "use loose mode: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{nic}.rp_filter=2\n\
                 (or 0), and persist it in /etc/sysctl.d/90-lvs-dr.conf"
            ),
        ),
        _ => Finding::ok(
            ID,
            format!("rp_filter is {} on {nic}", if eff == 0 { "off" } else { "loose" }),
            values,
        ),
    }
}

fn arp_announce(cfg: &NodeConfig, nic: &str, has_v4: bool, status: Option<&Status>) -> Finding {
    const ID: &str = "arp_announce";
    if !has_v4 {
        return Finding::ok(ID, "no IPv4 VIPs: ARP does not apply", "");
    }
    let Some((a, n, eff)) = pair(nic, "arp_announce") else {
        return Finding::warn(
            ID,
            format!("cannot read arp_announce for all/{nic}"),
            "",
            format!("check `sysctl net.ipv4.conf.{nic}.arp_announce`"),
        );
    };
    let values = format!("all={a}, {nic}={n}, effective={eff}");
    if eff >= 2 {
        return Finding::ok(
            ID,
            "the kernel's ARP requests use the real IP (arp_announce=2)",
            values,
        );
    }
    let why = format!(
        "{values}\nWith arp_announce < 2 the kernel may use a VIP as the sender address of its own \
         ARP requests (e.g. when it answers a client from the VIP). Every host on the segment then \
         learns \"VIP is at this node's MAC\" and sends the VIP's traffic here instead of to the \
         director."
    );
    let fix = format!(
        "sysctl -w net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.{nic}.arp_announce=2 \
         (`lvs-node up` does this with [arp] method = \"sysctl\")"
    );
    match cfg.arp_method {
        ArpMethod::Sysctl => Finding::error(
            ID,
            "arp_announce < 2: the kernel may announce the VIP",
            why,
            fix,
        ),
        m => {
            // arptables/nftables rewrite the sender of outgoing ARP from the VIP to the real IP.
            if status.is_some_and(|s| s.suppression_ok()) {
                Finding::ok(
                    ID,
                    format!("arp_announce={eff}, but the {} rules rewrite the ARP sender to the real IP", m.as_str()),
                    values,
                )
            } else {
                Finding::warn(
                    ID,
                    format!(
                        "arp_announce < 2 and the {} rewrite rules are not in place",
                        m.as_str()
                    ),
                    why,
                    format!(
                        "run `lvs-node up` to install the {} rules, or {fix}",
                        m.as_str()
                    ),
                )
            }
        }
    }
}

fn arp_ignore(cfg: &NodeConfig, nic: &str, has_v4: bool) -> Finding {
    const ID: &str = "arp_ignore";
    if !has_v4 {
        return Finding::ok(ID, "no IPv4 VIPs: ARP does not apply", "");
    }
    let Some((a, n, eff)) = pair(nic, "arp_ignore") else {
        return Finding::warn(
            ID,
            format!("cannot read arp_ignore for all/{nic}"),
            "",
            format!("check `sysctl net.ipv4.conf.{nic}.arp_ignore`"),
        );
    };
    let values = format!("all={a}, {nic}={n}, effective={eff}");
    let hides = matches!(eff, 1 | 2 | 3 | 8);
    match (cfg.arp_method, hides) {
        (_, true) => Finding::ok(
            ID,
            format!("arp_ignore={eff}: the node answers ARP only for addresses on {nic}"),
            values,
        ),
        (ArpMethod::Sysctl, false) => Finding::error(
            ID,
            "arp_ignore is 0: the node answers ARP for the VIP",
            format!(
                "{values}\nWith arp_ignore=0 Linux answers ARP for any local address on any \
                 interface, including the VIP on lo, so clients and routers reach this node \
                 directly and bypass the director (the LVS-DR \"ARP problem\")."
            ),
            format!(
                "sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.{nic}.arp_ignore=1 (`lvs-node up` sets it)"
            ),
        ),
        (m, false) => Finding::ok(
            ID,
            format!("arp_ignore={eff}; the {} rules drop ARP requests for the VIPs", m.as_str()),
            values,
        ),
    }
}
