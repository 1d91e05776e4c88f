//! `lvs-node director-config --pool URL...`: one complete director configuration for the
//! whole pool, from every node's `/status` (read through the same client and parser as the
//! pool poller). keepalived (default): one `virtual_server` per VIP and port (IPv6 VIPs
//! with the nodes' IPv6 addresses), each node a `real_server` with HTTP_GET on /health or
//! MISC_CHECK through `lvs-node probe`; GridFTP with data channels through the VIP becomes a
//! firewall-mark `virtual_server` with the director's mark rules beside it. HAProxy: one
//! frontend and backend per VIP and port, with agent-check.
//!
//! keepalived's parser is line-oriented: every keyword is written on its own line.
//!
//! What a node reports reaches the output only through [`PeerStatus`], the validated view
//! of its `/status` (a peer that fails validation is never passed here), and only as typed
//! values: addresses, ports, numbers, and in the header comment a host name that passed
//! RFC 1123 (no space, quote, brace or line break can be in it). Free text from a node
//! (check output, reasons) is never written. The one quoted string, `misc_path`, holds
//! only the admin's `--probe-path` (checked for quotes and control characters) and typed
//! values.

use crate::wire::peer::PeerStatus;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

/// One node as the generator needs it.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's report endpoint as the admin gave it (checked by `PeerUrl::parse`).
    pub url: String,
    pub status: PeerStatus,
}

impl Node {
    fn label(&self) -> String {
        match self.status.hostname() {
            None => self.url.clone(),
            Some(h) => format!("{} ({h})", self.url),
        }
    }
    /// The node's address for a VIP of this family.
    fn real_for(&self, vip: IpAddr) -> Result<IpAddr, String> {
        let n = &self.status.node;
        let a = if vip.is_ipv4() { n.real_ip } else { n.real_ip6 };
        a.ok_or_else(|| {
            format!(
                "node {} reports no {} real address for VIP {vip}: set real_ip (IPv4) or give its \
                 interface a global IPv6 address",
                self.url,
                if vip.is_ipv4() { "IPv4" } else { "IPv6" }
            )
        })
    }
}

/// `LOW-HIGH` (or `LOW:HIGH`, `LOW,HIGH` as GLOBUS_TCP_PORT_RANGE writes it).
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once(['-', ':', ','])
        .ok_or_else(|| format!("`{s}` is not LOW-HIGH, e.g. 50000-51000"))?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("`{a}` is not a port"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("`{b}` is not a port"))?;
    if a == 0 || b < a {
        return Err(format!("`{s}`: LOW must be at least 1 and at most HIGH"));
    }
    Ok((a, b))
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub haproxy: bool,
    pub misc_check: bool,
    pub probe_path: String,
    pub delay_loop: std::time::Duration,
    pub persistence: Option<u32>,
    pub data_ports: Option<(u16, u16)>,
    pub fwmark: u32,
    /// `--bfd --bfd-source IP`: the director's address for BFD to every node.
    pub bfd_source: Option<IpAddr>,
    /// Nodes left out (--allow-missing), named in a comment: no answer, ...
    pub missing: Vec<String>,
    /// ... or an answer that failed validation.
    pub invalid: Vec<String>,
}

/// (VIP, port) -> the nodes serving it, VIPs in order (IPv4 first), ports ascending.
fn services(nodes: &[Node]) -> BTreeMap<(bool, IpAddr, u16), Vec<&Node>> {
    let mut m: BTreeMap<(bool, IpAddr, u16), Vec<&Node>> = BTreeMap::new();
    for n in nodes {
        for s in &n.status.node.services {
            for p in &s.ports {
                m.entry((s.vip.is_ipv6(), s.vip, *p)).or_default().push(n);
            }
        }
    }
    m
}

fn header(o: &mut String, nodes: &[Node], opts: &Options, what: &str) {
    let _ = writeln!(
        o,
        "# lvs-node {}: {what} for a pool of {} node(s), from their /status:",
        env!("CARGO_PKG_VERSION"),
        nodes.len()
    );
    for n in nodes {
        let _ = writeln!(o, "#   {}", n.label());
    }
    for m in &opts.missing {
        let _ = writeln!(o, "#   LEFT OUT (did not answer, --allow-missing): {m}");
    }
    for m in &opts.invalid {
        let _ = writeln!(o, "#   LEFT OUT (invalid /status, --allow-missing): {m}");
    }
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

/// A keepalived duration: whole seconds, or seconds with a fraction.
fn secs(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.3}", d.as_secs_f64())
    }
}

/// The checker of one node: HTTP_GET on its /health, or MISC_CHECK through `probe`.
/// `delay_loop`: the checker's own interval in seconds (None: the virtual_server's).
pub fn checker(
    o: &mut String,
    ind: &str,
    report: SocketAddr,
    misc: bool,
    probe_path: &str,
    delay_loop: Option<u32>,
) {
    if misc {
        let _ = writeln!(o, "{ind}MISC_CHECK {{");
        let _ = writeln!(
            o,
            "{ind}    misc_path \"{probe_path} probe --agent http://{}:{} --timeout 1s\"",
            host(report.ip()),
            report.port()
        );
        let _ = writeln!(o, "{ind}    misc_timeout 3");
        let _ = writeln!(o, "{ind}    misc_dynamic");
        if let Some(d) = delay_loop {
            let _ = writeln!(o, "{ind}    delay_loop {d}");
        }
        let _ = writeln!(o, "{ind}}}");
    } else {
        let _ = writeln!(o, "{ind}HTTP_GET {{");
        let _ = writeln!(o, "{ind}    url {{");
        let _ = writeln!(o, "{ind}        path /health");
        let _ = writeln!(o, "{ind}        status_code 200");
        let _ = writeln!(o, "{ind}    }}");
        let _ = writeln!(o, "{ind}    connect_ip {}", report.ip());
        let _ = writeln!(o, "{ind}    connect_port {}", report.port());
        let _ = writeln!(o, "{ind}    connect_timeout 1");
        // No retry: /health is already the agent's confirmed verdict (its checks' `fall`),
        // so a retry would only add `delay_before_retry` to every real failure. A false
        // failure (one lost or late answer) costs little: with `inhibit_on_failure` the
        // node goes to weight 0 until keepalived has seen two passing checks in a row (two
        // `delay_loop`s), and its running transfers continue.
        let _ = writeln!(o, "{ind}    retry 0");
        if let Some(d) = delay_loop {
            let _ = writeln!(o, "{ind}    delay_loop {d}");
        }
        let _ = writeln!(o, "{ind}}}");
    }
}

/// One `real_server` block (port None: a firewall-mark service).
pub fn real_server(
    o: &mut String,
    ind: &str,
    addr: IpAddr,
    port: Option<u16>,
    weight: u32,
    check: impl FnOnce(&mut String, &str),
) {
    match port {
        Some(p) => {
            let _ = writeln!(o, "{ind}real_server {addr} {p} {{");
        }
        None => {
            let _ = writeln!(o, "{ind}real_server {addr} {{");
        }
    }
    let _ = writeln!(o, "{ind}    weight {weight}");
    // A failing or drained node gets weight 0 and keeps its running transfers instead of
    // being removed (which would cut them).
    let _ = writeln!(o, "{ind}    inhibit_on_failure");
    check(o, &format!("{ind}    "));
    let _ = writeln!(o, "{ind}}}");
}

/// The settings every virtual_server has. A firewall-mark service takes no `protocol`
/// (the mark rules match TCP).
fn vs_common(o: &mut String, opts: &Options, persistence: Option<u32>, fwmark: bool) {
    let _ = writeln!(o, "    delay_loop {}", secs(opts.delay_loop));
    let _ = writeln!(o, "    lb_algo wlc");
    let _ = writeln!(o, "    lb_kind DR");
    if !fwmark {
        let _ = writeln!(o, "    protocol TCP");
    }
    if let Some(p) = persistence {
        let _ = writeln!(o, "    persistence_timeout {p}");
    }
}

/// The checker for `n`'s real server of `vip`: an IPv6 service is checked over the node's
/// IPv6 report endpoint (`[report] http6`) when it has one, so that a dual-stack pool's IPv6
/// services fail with the node's IPv6 path.
fn node_checker<'a>(
    n: &'a Node,
    opts: &'a Options,
    vip: IpAddr,
) -> Result<impl FnOnce(&mut String, &str) + 'a, String> {
    let v6 = n.status.node.report_http6.filter(|_| vip.is_ipv6());
    let report = v6.or(n.status.node.report_http).ok_or_else(|| {
        format!(
            "node {} has no [report] http endpoint for the director's checker",
            n.url
        )
    })?;
    let bfd = opts.bfd_source.map(|_| bfd_name(n));
    Ok(move |o: &mut String, ind: &str| {
        checker(o, ind, report, opts.misc_check, &opts.probe_path, None);
        // keepalived takes a real server out when any of its checkers fails: BFD reacts
        // within a packet, the HTTP check stays as the slower second opinion.
        if let Some(name) = bfd {
            let _ = writeln!(o, "{ind}BFD_CHECK {{");
            let _ = writeln!(o, "{ind}    name {name}");
            let _ = writeln!(o, "{ind}}}");
        }
    })
}

/// The bfd_instance name of a node: its BFD source address.
fn bfd_name(n: &Node) -> String {
    let a = n.status.node.bfd.as_ref().map(|b| b.source.to_string());
    format!("lvs-{}", a.unwrap_or_default().replace(['.', ':'], "-"))
}

/// A keepalived BFD interval in milliseconds (microsecond resolution).
fn bfd_ms(ms: f64) -> String {
    let s = format!("{ms:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One `bfd_instance` per node for `--bfd`: the director's side of each node's session,
/// with the node's timers mirrored (the director receives at the node's TX rate).
fn bfd_stanzas(o: &mut String, nodes: &[Node], source: Option<IpAddr>) -> Result<(), String> {
    let Some(src) = source else {
        return Ok(());
    };
    let mut seen = Vec::new();
    for n in nodes {
        let b = n.status.node.bfd.as_ref().ok_or_else(|| {
            format!(
                "--bfd: node {} has no [bfd]: add `[bfd] directors = [\"{src}\"]` to its node.toml and reload it, or leave out --bfd",
                n.url
            )
        })?;
        if !b.directors.contains(&src) {
            return Err(format!(
                "--bfd-source {src}: node {} does not list it in [bfd] directors ({:?}) and would drop this director's packets: add it there, or pass the director address it lists",
                n.url, b.directors
            ));
        }
        if b.source.is_ipv4() != src.is_ipv4() {
            return Err(format!(
                "--bfd-source {src}: node {} speaks BFD from {} (another address family)",
                n.url, b.source
            ));
        }
        if seen.contains(&b.source) {
            return Err(format!(
                "--bfd: node {} has the BFD source {} of another node",
                n.url, b.source
            ));
        }
        seen.push(b.source);
        let _ = writeln!(o, "\nbfd_instance {} {{", bfd_name(n));
        let _ = writeln!(o, "    neighbor_ip {}", b.source);
        let _ = writeln!(o, "    source_ip {src}");
        let _ = writeln!(o, "    min_rx {}", bfd_ms(b.min_tx_ms));
        let _ = writeln!(o, "    min_tx {}", bfd_ms(b.min_rx_ms));
        let _ = writeln!(o, "    multiplier {}", b.multiplier);
        if src.is_ipv6() {
            // RFC 5881: 255 both ways; keepalived's IPv6 default is 64.
            let _ = writeln!(o, "    hoplimit 255");
        }
        let _ = writeln!(o, "    checker");
        let _ = writeln!(o, "}}");
    }
    Ok(())
}

pub fn keepalived(nodes: &[Node], opts: &Options) -> Result<String, String> {
    let mut o = String::new();
    header(
        &mut o,
        nodes,
        opts,
        "keepalived configuration (check with `keepalived -t -f FILE`)",
    );
    bfd_stanzas(&mut o, nodes, opts.bfd_source)?;
    let svc = services(nodes);
    // VIPs whose GridFTP (2811) goes through a firewall mark with its data range.
    let mut marked: Vec<IpAddr> = Vec::new();
    if opts.data_ports.is_some() {
        for (_, vip, port) in svc.keys() {
            if *port == 2811 && !marked.contains(vip) {
                marked.push(*vip);
            }
        }
        if marked.is_empty() {
            return Err("--gridftp-data-ports: no node serves port 2811 on a VIP".into());
        }
    }
    for ((_, vip, port), members) in &svc {
        if marked.contains(vip) && *port == 2811 {
            continue;
        }
        let _ = writeln!(o, "\nvirtual_server {vip} {port} {{");
        vs_common(&mut o, opts, opts.persistence, false);
        for n in members {
            let addr = n.real_for(*vip)?;
            real_server(
                &mut o,
                "    ",
                addr,
                Some(*port),
                n.status.node.base_weight.max(1),
                node_checker(n, opts, *vip)?,
            );
        }
        let _ = writeln!(o, "}}");
    }
    if let Some((lo, hi)) = opts.data_ports {
        for (i, vip) in marked.iter().enumerate() {
            let mark = opts.fwmark + i as u32;
            let members = &svc[&(vip.is_ipv6(), *vip, 2811)];
            fwmark_rules(&mut o, *vip, mark, lo, hi);
            let _ = writeln!(o, "virtual_server fwmark {mark} {{");
            // Without persistence the data connections of a session would be balanced
            // away from its control connection.
            vs_common(&mut o, opts, Some(opts.persistence.unwrap_or(300)), true);
            if vip.is_ipv6() {
                let _ = writeln!(o, "    ip_family inet6");
            }
            for n in members {
                let addr = n.real_for(*vip)?;
                real_server(
                    &mut o,
                    "    ",
                    addr,
                    None,
                    n.status.node.base_weight.max(1),
                    node_checker(n, opts, *vip)?,
                );
            }
            let _ = writeln!(o, "}}");
        }
    }
    Ok(o)
}

/// The director's packet-marking rules for one VIP, as comments (iptables and nft).
fn fwmark_rules(o: &mut String, vip: IpAddr, mark: u32, lo: u16, hi: u16) {
    let (ipt, fam, plen, daddr) = if vip.is_ipv4() {
        ("iptables", "ip", 32, "ip daddr")
    } else {
        ("ip6tables", "ip6", 128, "ip6 daddr")
    };
    let _ = writeln!(
        o,
        "\n# GridFTP on {vip} with data channels through the VIP (RHEL 6 LVS guide, 3.4-3.5):\n\
         # control (2811) and data ({lo}-{hi}) carry firewall mark {mark}, so IPVS sends a\n\
         # client's data connections to the node holding its control connection. On the director:\n\
         #   {ipt} -t mangle -A PREROUTING -p tcp -d {vip}/{plen} -m multiport --dports 2811,{lo}:{hi} -j MARK --set-mark {mark}\n\
         # or with nftables:\n\
         #   nft add table {fam} lvs_mark\n\
         #   nft add chain {fam} lvs_mark prerouting '{{ type filter hook prerouting priority mangle; }}'\n\
         #   nft add rule {fam} lvs_mark prerouting {daddr} {vip} tcp dport {{ 2811, {lo}-{hi} }} meta mark set {mark}"
    );
}

pub fn haproxy(nodes: &[Node], opts: &Options) -> Result<String, String> {
    let mut o = String::new();
    header(
        &mut o,
        nodes,
        opts,
        "HAProxy configuration (check with `haproxy -c -f FILE`)",
    );
    let _ = writeln!(
        o,
        "# The agent reports `up ready N%`, `drain`, `maint` or `down ... #reason`.\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h"
    );
    for ((_, vip, port), members) in &services(nodes) {
        let id = format!("{}-{port}", vip.to_string().replace([':', '.'], "-"));
        let _ = writeln!(o, "\nfrontend fe-{id}");
        let _ = writeln!(o, "    bind {}:{port}", haproxy_addr(*vip));
        let _ = writeln!(o, "    default_backend be-{id}");
        let _ = writeln!(o, "\nbackend be-{id}");
        let _ = writeln!(o, "    balance leastconn");
        for n in members {
            let addr = n.real_for(*vip)?;
            let agent = n.status.node.agent_check.ok_or_else(|| {
                format!(
                    "node {} has no [report] agent_check endpoint: add e.g. agent_check = \"REAL_IP:8081\"",
                    n.url
                )
            })?;
            let _ = writeln!(
                o,
                "    server rs-{}-{port} {}:{port} weight {} check agent-check agent-addr {} agent-port {} agent-inter 1s",
                addr.to_string().replace([':', '.'], "-"),
                haproxy_addr(addr),
                n.status.node.base_weight.max(1),
                agent.ip(),
                agent.port()
            );
        }
    }
    let _ = opts;
    Ok(o)
}

/// HAProxy reads `ADDR:PORT` splitting at the last colon; `ipv6@` makes an IPv6 address
/// unambiguous.
fn haproxy_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("ipv6@{v6}"),
        v4 => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::peer::{validate, PeerUrl, Resolved, Source};
    use crate::wire::status::StatusDoc;

    fn checked(url: &str, d: StatusDoc) -> PeerStatus {
        let u = PeerUrl::parse(url).unwrap();
        validate(d, &u, Source::Peer(&Resolved::default())).unwrap()
    }

    fn node(url: &str, v4: &str, v6: Option<&str>) -> Node {
        let mut status: StatusDoc = serde_json::from_value(serde_json::json!({
            "state": "up", "admin": {"admin": "ready"}, "reason": null, "weight": 100,
            "base_weight": 100, "load": {"sessions": 0, "load1": 0.0, "cores": 1},
            "checks": [], "vips": [], "arp_suppressed": true, "repairs_total": 0,
            "last_repair_ms": null, "version": "t"
        }))
        .unwrap();
        status.node.real_ip = Some(v4.parse().unwrap());
        status.node.real_ip6 = v6.map(|a| a.parse().unwrap());
        status.node.report_http = Some(format!("{v4}:8080").parse().unwrap());
        status.node.base_weight = 100;
        status.node.services = vec![
            crate::wire::status::Service {
                vip: "192.0.2.100".parse().unwrap(),
                hostname: None,
                ports: vec![2811],
            },
            crate::wire::status::Service {
                vip: "2001:db8::100".parse().unwrap(),
                hostname: None,
                ports: vec![2811],
            },
        ];
        Node {
            url: url.into(),
            status: checked(url, status),
        }
    }

    #[test]
    fn ipv6_vips_use_ipv6_real_addresses_or_name_the_node() {
        let opts = Options {
            probe_path: "/usr/bin/lvs-node".into(),
            delay_loop: std::time::Duration::from_secs(1),
            ..Options::default()
        };
        let a = node("http://192.0.2.11:8080", "192.0.2.11", Some("2001:db8::11"));
        let k = keepalived(std::slice::from_ref(&a), &opts).unwrap();
        assert!(k.contains("virtual_server 2001:db8::100 2811 {"), "{k}");
        assert!(k.contains("real_server 2001:db8::11 2811 {"), "{k}");
        assert!(k.contains("real_server 192.0.2.11 2811 {"), "{k}");
        let b = node("http://192.0.2.12:8080", "192.0.2.12", None);
        let e = keepalived(&[a, b], &opts).unwrap_err();
        assert!(e.contains("http://192.0.2.12:8080"), "{e}");
        assert!(e.contains("IPv6"), "{e}");
    }

    #[test]
    fn bfd_instance_per_node_and_check_beside_http_get() {
        let src: IpAddr = "192.0.2.2".parse().unwrap();
        let mut a = node("http://192.0.2.11:8080", "192.0.2.11", Some("2001:db8::11"));
        let opts = Options {
            probe_path: "/usr/bin/lvs-node".into(),
            delay_loop: std::time::Duration::from_secs(1),
            bfd_source: Some(src),
            ..Options::default()
        };
        let e = keepalived(std::slice::from_ref(&a), &opts).unwrap_err();
        assert!(e.contains("has no [bfd]"), "{e}");
        let mut d = a.status.doc().clone();
        d.node.bfd = Some(crate::wire::status::BfdInfo {
            source: "192.0.2.11".parse().unwrap(),
            directors: vec!["192.0.2.3".parse().unwrap()],
            min_tx_ms: 50.0,
            min_rx_ms: 100.0,
            multiplier: 3,
        });
        a.status = checked(&a.url, d.clone());
        let e = keepalived(std::slice::from_ref(&a), &opts).unwrap_err();
        assert!(e.contains("does not list it"), "{e}");
        d.node.bfd.as_mut().unwrap().directors.push(src);
        a.status = checked(&a.url, d);
        let k = keepalived(std::slice::from_ref(&a), &opts).unwrap();
        assert_eq!(k.matches("bfd_instance lvs-192-0-2-11 {").count(), 1, "{k}");
        assert!(k.contains("    neighbor_ip 192.0.2.11\n    source_ip 192.0.2.2\n    min_rx 50\n    min_tx 100\n    multiplier 3\n"), "{k}");
        // Every real_server of the node (IPv4 and IPv6 services) carries the check and
        // keeps inhibit_on_failure and its HTTP_GET.
        assert_eq!(
            k.matches("BFD_CHECK {\n            name lvs-192-0-2-11\n")
                .count(),
            2,
            "{k}"
        );
        assert_eq!(k.matches("HTTP_GET {").count(), 2, "{k}");
        assert_eq!(k.matches("inhibit_on_failure").count(), 2, "{k}");
        assert_eq!(bfd_ms(0.5), "0.5");
    }

    /// One failed HTTP_GET takes the node to weight 0 (no retry schedule to wait out),
    /// and `inhibit_on_failure` keeps its running transfers.
    #[test]
    fn http_get_fails_at_the_first_failed_check_and_inhibits() {
        let opts = Options {
            probe_path: "/usr/bin/lvs-node".into(),
            delay_loop: std::time::Duration::from_secs(1),
            ..Options::default()
        };
        let a = node("http://192.0.2.11:8080", "192.0.2.11", Some("2001:db8::11"));
        let k = keepalived(std::slice::from_ref(&a), &opts).unwrap();
        assert_eq!(
            k.matches("            connect_timeout 1\n            retry 0\n")
                .count(),
            2,
            "{k}"
        );
        assert!(
            !k.contains("delay_before_retry") && !k.contains("retry 1"),
            "{k}"
        );
        assert_eq!(k.matches("inhibit_on_failure").count(), 2, "{k}");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("50000-51000").unwrap(), (50000, 51000));
        assert_eq!(parse_range("50000,51000").unwrap(), (50000, 51000));
        assert!(parse_range("51000-50000").is_err());
        assert!(parse_range("x").is_err());
    }
}
