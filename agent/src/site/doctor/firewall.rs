//! `firewalld`: when firewalld runs, does the zone of the NIC open every port the node needs
//! (GridFTP control and data, the report endpoints, port 80 for `[acme]`)? It asks the daemon
//! with `firewall-cmd` and prints the `firewall-cmd` lines that open what is missing.
//!
//! `gridftp.firewall` (best effort, when firewalld does not run): when an nftables input chain drops by default (policy
//! drop, or a final unconditional drop/reject as firewalld does), is the data port range
//! accepted? iptables-nft rules show up in `nft list ruleset` too. Only `tcp dport` accept
//! rules are counted; rules for `lo` are not.

use super::Finding;
use crate::dataplane::arp::{find_tool, run_tool};
use crate::site::firewalld::covered;
use crate::site::gridftp_conf::{parse_range, GridftpSettings};
use lvs_shared::config::NodeConfig;

pub const ID: &str = "gridftp.firewall";
pub const FIREWALLD: &str = "firewalld";

/// `firewalld` and `gridftp.firewall`. With firewalld running its answer is authoritative:
/// the nftables reading cannot follow firewalld's per-zone jumps.
pub fn findings(cfg: &NodeConfig, gf: &GridftpSettings) -> Vec<Finding> {
    match crate::site::firewalld::running() {
        None => vec![
            finding(gf),
            Finding::ok(
                FIREWALLD,
                "firewall-cmd not installed: firewalld not checked",
                "",
            ),
        ],
        Some(false) => vec![
            finding(gf),
            Finding::ok(
                FIREWALLD,
                "firewalld is not running",
                "firewall-cmd --state",
            ),
        ],
        Some(true) => vec![
            Finding::ok(
                ID,
                "firewalld manages the firewall: see the firewalld finding",
                "",
            ),
            firewalld_finding(cfg, gf),
        ],
    }
}

fn firewalld_finding(cfg: &NodeConfig, gf: &GridftpSettings) -> Finding {
    use crate::site::firewalld as fw;
    let zone = match fw::zone_for(&cfg.interface) {
        Ok(z) => z,
        Err(e) => {
            return Finding::warn(
                FIREWALLD,
                "firewalld runs but its zones cannot be read",
                e,
                "run doctor as root to check the firewall",
            )
        }
    };
    let needs = fw::needed(cfg, gf);
    let missing = fw::missing(&needs, &zone);
    let list = |v: &[&fw::Need]| {
        v.iter()
            .map(|n| format!("{} ({})", n.spec(), n.what))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all: Vec<&fw::Need> = needs.iter().collect();
    if missing.is_empty() {
        return Finding::ok(
            FIREWALLD,
            format!(
                "firewalld zone {} opens every port the node needs",
                zone.name
            ),
            format!("{}: {}", zone.how, list(&all)),
        );
    }
    let mut fix = fw::fix_lines(&zone, &missing).join("\n");
    // The report service goes to the directors alone when they are known.
    let directors: Vec<&std::net::IpAddr> =
        needs
            .iter()
            .flat_map(|n| n.sources.iter())
            .fold(Vec::new(), |mut v, a| {
                if !v.contains(&a) {
                    v.push(a);
                }
                v
            });
    let report = if directors.is_empty() {
        format!("--add-service={}", fw::REPORT_SERVICE)
    } else {
        directors
            .iter()
            .map(|a| {
                format!(
                    "--add-rich-rule='rule family=\"{}\" source address=\"{a}\" service name=\"{}\" accept'",
                    if a.is_ipv4() { "ipv4" } else { "ipv6" },
                    fw::REPORT_SERVICE
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    fix.push_str(&format!(
        "\n(or the services: `lvs-node firewalld-service gridftp > \
         /etc/firewalld/services/{g}.xml`, the same for report, `firewall-cmd --reload`, then \
         `firewall-cmd --permanent --zone={z} --add-service={g} {report}`)",
        g = fw::GRIDFTP_SERVICE,
        z = zone.name
    ));
    let no_range = if data_range_missing(gf) {
        " GridFTP has no data port range, so its data ports cannot be opened: set one (see \
         gridftp.port_range)."
    } else {
        ""
    };
    Finding::error(
        FIREWALLD,
        format!(
            "firewalld zone {} blocks {}",
            zone.name,
            missing
                .iter()
                .map(|n| n.spec())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "firewalld is running and {} ({}) does not open {}. Clients, directors or the ACME \
             CA cannot reach these ports.{no_range}",
            zone.name,
            zone.how,
            list(&missing)
        ),
        fix,
    )
}

fn data_range_missing(gf: &GridftpSettings) -> bool {
    crate::site::firewalld::data_range(gf).is_none()
}

/// One table holding a closing input chain, and the TCP ports its accept rules open.
#[derive(Debug, Default, PartialEq)]
pub struct Closing {
    pub table: String,
    pub chain: String,
    pub accepted: Vec<(u16, u16)>,
}

/// Finds the tables with an input chain that drops by default.
pub fn closing_tables(ruleset: &str) -> Vec<Closing> {
    struct Chain {
        name: String,
        input: bool,
        policy_drop: bool,
        last_rule: String,
    }
    let mut out = Vec::new();
    /// A table: its name, the ports any of its chains accept, its closing input chains.
    type Table = (String, Vec<(u16, u16)>, Vec<String>);
    let mut table: Option<Table> = None;
    let mut chain: Option<Chain> = None;
    let mut depth = 0usize; // blocks inside a chain or a set
    for line in ruleset.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.starts_with("table ") && l.ends_with('{') {
            let name = l
                .trim_end_matches('{')
                .trim()
                .trim_start_matches("table ")
                .to_string();
            table = Some((name, Vec::new(), Vec::new()));
            continue;
        }
        if chain.is_none() && depth == 0 && l.starts_with("chain ") && l.ends_with('{') {
            let name = l
                .trim_end_matches('{')
                .trim()
                .trim_start_matches("chain ")
                .to_string();
            chain = Some(Chain {
                name,
                input: false,
                policy_drop: false,
                last_rule: String::new(),
            });
            continue;
        }
        if l.ends_with('{') {
            depth += 1;
            continue;
        }
        if l == "}" {
            if depth > 0 {
                depth -= 1;
            } else if let Some(c) = chain.take() {
                let last = c.last_rule.trim();
                let closes = c.policy_drop || last == "drop" || last.starts_with("reject");
                if c.input && closes {
                    if let Some(t) = table.as_mut() {
                        t.2.push(c.name);
                    }
                }
            } else if let Some((name, accepted, chains)) = table.take() {
                for ch in chains {
                    out.push(Closing {
                        table: name.clone(),
                        chain: ch,
                        accepted: accepted.clone(),
                    });
                }
            }
            continue;
        }
        let Some(c) = chain.as_mut() else { continue };
        if depth > 0 {
            continue;
        }
        if l.starts_with("type ") && l.contains(" hook input ") {
            c.input = true;
            c.policy_drop = l.contains("policy drop");
            continue;
        }
        c.last_rule = strip_counters(l);
        if let Some(t) = table.as_mut() {
            t.1.extend(accepted_ports(l));
        }
    }
    out
}

fn strip_counters(l: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    let mut it = l.split_whitespace().peekable();
    while let Some(w) = it.next() {
        if w == "counter" {
            // `counter packets N bytes M`
            while it
                .peek()
                .is_some_and(|n| *n == "packets" || *n == "bytes" || n.parse::<u64>().is_ok())
            {
                it.next();
            }
            continue;
        }
        words.push(w);
    }
    words.join(" ")
}

/// TCP port ranges a rule line accepts (empty unless it ends in accept and is not for lo).
pub fn accepted_ports(line: &str) -> Vec<(u16, u16)> {
    let l = strip_counters(line);
    if !(l.ends_with(" accept") || l == "accept") || l.contains("\"lo\"") {
        return Vec::new();
    }
    if l == "accept" {
        return vec![(1, 65535)];
    }
    let Some(i) = l.find("tcp dport ").or_else(|| l.find("th dport ")) else {
        return Vec::new();
    };
    let rest = &l[i..];
    let rest = &rest[rest.find("dport ").unwrap() + 6..];
    let expr = if let Some(r) = rest.strip_prefix('{') {
        r.split('}').next().unwrap_or("")
    } else {
        rest.split_whitespace().next().unwrap_or("")
    };
    expr.split(',')
        .filter_map(|item| {
            let item = item.trim();
            match item.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => item.parse().ok().map(|p| (p, p)),
            }
        })
        .collect()
}

pub fn finding(gf: &GridftpSettings) -> Finding {
    if find_tool("nft").is_none() {
        return Finding::ok(ID, "nft not installed: firewall not checked", "");
    }
    let ruleset = match run_tool("nft", &["list", "ruleset"], None) {
        Ok(r) => r,
        Err(e) => {
            return Finding::warn(
                ID,
                "cannot read the nftables ruleset",
                e.to_string(),
                "run doctor as root to check the firewall",
            )
        }
    };
    let closing = closing_tables(&ruleset);
    if closing.is_empty() {
        return Finding::ok(
            ID,
            "no input chain drops by default",
            "nftables has no input chain with policy drop (or a final drop/reject)",
        );
    }
    let where_ = closing
        .iter()
        .map(|c| format!("table {} chain {}", c.table, c.chain))
        .collect::<Vec<_>>()
        .join(", ");
    let Some((a, b)) = gf
        .port_range()
        .and_then(|(_, s)| parse_range(&s.value).ok())
    else {
        return Finding::warn(
            ID,
            "the firewall drops by default and GridFTP has no data port range",
            format!(
                "{where_} drops new connections; with no port_range the data ports are random, so \
                 they cannot be opened"
            ),
            "set a port range (see gridftp.port_range) and accept it, e.g. \
             nft add rule inet filter input tcp dport 50000-51000 accept",
        );
    };
    let open: Vec<&Closing> = closing
        .iter()
        .filter(|c| !covered(&c.accepted, a, b))
        .collect();
    if open.is_empty() {
        return Finding::ok(
            ID,
            format!("the firewall accepts the data ports {a}-{b}"),
            format!("checked {where_}"),
        );
    }
    let t = &open[0];
    let family_table = t.table.clone();
    Finding::warn(
        ID,
        format!("the firewall may drop the data ports {a}-{b}"),
        format!(
            "no `tcp dport` accept rule covering {a}-{b} found in {} (best effort: jumps, sets \
             and source restrictions are not followed). Passive data connections would time out.",
            open.iter()
                .map(|c| format!("table {} chain {}", c.table, c.chain))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "nft add rule {family_table} {} tcp dport {a}-{b} accept (or `firewall-cmd --permanent \
             --add-port={a}-{b}/tcp && firewall-cmd --reload`)",
            t.chain
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS: &str = r#"table inet filter {
	set allowed {
		type ipv4_addr
		elements = { 192.0.2.2 }
	}
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		tcp dport { 2811, 8080-8081 } accept
		meta l4proto tcp tcp dport 50000-50049 counter packets 0 bytes 0 accept
		tcp dport 50050-50100 accept
	}
	chain output {
		type filter hook output priority filter; policy accept;
	}
}
table arp lvs_node {
	chain in {
		type filter hook input priority filter; policy accept;
	}
}
"#;

    #[test]
    fn finds_closing_chain_and_ports() {
        let c = closing_tables(RS);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].table, "inet filter");
        assert_eq!(c[0].chain, "input");
        assert!(covered(&c[0].accepted, 50000, 50100));
        assert!(covered(&c[0].accepted, 2811, 2811));
        assert!(!covered(&c[0].accepted, 50000, 50101));
        assert!(!covered(&c[0].accepted, 8079, 8080));
    }

    #[test]
    fn firewalld_style_final_reject() {
        let rs = "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t\tct state established,related accept\n\t\treject with icmpx admin-prohibited\n\t}\n}\n";
        let c = closing_tables(rs);
        assert_eq!(c.len(), 1);
        assert!(c[0].accepted.is_empty());
        assert!(accepted_ports("iifname \"lo\" accept").is_empty());
        assert_eq!(accepted_ports("accept"), vec![(1, 65535)]);
    }
}
