//! firewalld, the default firewall of EL sites: the ports a node needs, the service
//! definitions that open them (`lvs-node firewalld-service`, and the defaults shipped in
//! the packages), and what the running daemon has open (for `lvs-node doctor`).
//!
//! The GridFTP data port range is site-specific, so the packages ship a service with the
//! common 50000-51000 and `lvs-node firewalld-service gridftp` writes one from this node's
//! GridFTP config; a file of the same name in /etc/firewalld/services overrides the one in
//! /usr/lib/firewalld/services.
//!
//! Every port is TCP except BFD's (UDP 3784, `[bfd]`): a port carries its protocol from the
//! need to the service file, the `--add-port` fix and the reading of the zone, so a UDP port
//! is never taken as open because the same number is open for TCP.
//!
//! With `[report] allow` (and no `public_health`), only the directors may use the report
//! ports, so the fix is a rich rule per director address for those ports, not a port
//! opened to the whole zone; a rich rule already in the zone counts as open for its source.

use crate::site::gridftp_conf::{parse_range, GridftpSettings};
use lvs_shared::config::NodeConfig;
use std::net::IpAddr;
use std::process::Command;

pub const GRIDFTP_SERVICE: &str = "lvs-node-gridftp";
pub const REPORT_SERVICE: &str = "lvs-node-report";
pub const GRIDFTP_PORT: u16 = 2811;
/// The range shipped in the packaged service when the site's is unknown.
pub const DEFAULT_DATA_RANGE: (u16, u16) = (50000, 51000);

/// The transport of a port, as firewalld spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port range (inclusive) with its protocol.
pub type Ports = (Proto, (u16, u16));

/// A port range (inclusive) and why it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub proto: Proto,
    pub ports: (u16, u16),
    pub what: String,
    /// Only these sources need it (the directors); empty: every client.
    pub sources: Vec<IpAddr>,
}

impl Need {
    fn tcp(ports: (u16, u16), what: impl Into<String>) -> Need {
        Need {
            proto: Proto::Tcp,
            ports,
            what: what.into(),
            sources: Vec::new(),
        }
    }

    fn from(mut self, sources: &[IpAddr]) -> Need {
        self.sources = sources.to_vec();
        self
    }

    pub fn spec(&self) -> String {
        let p = port_spec((self.proto, self.ports));
        if self.sources.is_empty() {
            p
        } else {
            let from: Vec<String> = self.sources.iter().map(|a| a.to_string()).collect();
            format!("{p} from {}", from.join(" "))
        }
    }
}

/// A firewalld rich rule accepting `ports` from `source` alone.
pub fn rich_rule(source: IpAddr, (proto, r): Ports) -> String {
    let family = if source.is_ipv4() { "ipv4" } else { "ipv6" };
    format!(
        "rule family=\"{family}\" source address=\"{source}\" port port=\"{}\" protocol=\"{}\" accept",
        range_text(r),
        proto.as_str()
    )
}

/// `key="value"` of a rich rule line (firewall-cmd prints every value quoted).
fn rich_value<'a>(rule: &'a str, key: &str) -> Option<&'a str> {
    let at = rule.find(&format!(" {key}=\""))? + key.len() + 3;
    rule[at..].split('"').next()
}

/// The (source, ports) a zone's rich rules accept: rules with one source address and
/// either a port or a service (`services` resolves a service to its ports).
pub fn parse_rich(rules: &str, services: &dyn Fn(&str) -> Vec<Ports>) -> Vec<(IpAddr, Ports)> {
    let mut v = Vec::new();
    for rule in rules.lines().map(str::trim) {
        if !rule.ends_with(" accept") || rule.contains(" NOT ") || rule.contains("source NOT") {
            continue;
        }
        let Some(src) = rich_value(rule, "source address").and_then(|a| a.parse::<IpAddr>().ok())
        else {
            continue;
        };
        if let (Some(port), Some(proto)) =
            (rich_value(rule, "port port"), rich_value(rule, "protocol"))
        {
            v.extend(
                parse_ports(&format!("{port}/{proto}"))
                    .into_iter()
                    .map(|p| (src, p)),
            );
        } else if let Some(svc) = rich_value(rule, "service name") {
            v.extend(services(svc).into_iter().map(|p| (src, p)));
        }
    }
    v
}

fn range_text((a, b): (u16, u16)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

pub fn port_spec((proto, r): Ports) -> String {
    format!("{}/{}", range_text(r), proto.as_str())
}

/// A firewalld service definition (the format of /usr/lib/firewalld/services/*.xml).
pub fn service_xml(short: &str, description: &str, ports: &[Ports]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service>\n");
    s.push_str(&format!("  <short>{}</short>\n", xml_escape(short)));
    s.push_str(&format!(
        "  <description>{}</description>\n",
        xml_escape(description)
    ));
    for &(proto, r) in ports {
        s.push_str(&format!(
            "  <port protocol=\"{}\" port=\"{}\"/>\n",
            proto.as_str(),
            range_text(r)
        ));
    }
    s.push_str("</service>\n");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The GridFTP control port(s): the `[[vip]] ports`, else 2811.
pub fn control_ports(cfg: &NodeConfig) -> Vec<u16> {
    let mut v: Vec<u16> = cfg
        .vips
        .iter()
        .flat_map(|x| x.ports.iter().copied())
        .collect();
    v.sort();
    v.dedup();
    if v.is_empty() {
        v.push(GRIDFTP_PORT);
    }
    v
}

/// The data port range from the GridFTP config, if set and valid.
pub fn data_range(gf: &GridftpSettings) -> Option<(u16, u16)> {
    gf.port_range()
        .and_then(|(_, s)| parse_range(&s.value).ok())
}

pub fn gridftp_xml(control: &[u16], data: (u16, u16)) -> String {
    let mut ports: Vec<Ports> = control.iter().map(|&p| (Proto::Tcp, (p, p))).collect();
    ports.push((Proto::Tcp, data));
    service_xml(
        "LVS-DR GridFTP node",
        &format!(
            "GridFTP behind an LVS direct-routing VIP: the control port and the passive data \
             port range {}-{} (GLOBUS_TCP_PORT_RANGE / port_range). Written by lvs-node.",
            data.0, data.1
        ),
        &ports,
    )
}

pub fn report_ports(cfg: &NodeConfig) -> Vec<u16> {
    let r = &cfg.daemon.report;
    let mut v: Vec<u16> = [r.http, r.agent_check, r.http6, r.agent_check6]
        .into_iter()
        .flatten()
        .map(|a| a.port())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// BFD's receive port (UDP 3784, RFC 5881) when `[bfd]` is set: the directors send their
/// control packets there. The node's own packets (from 49152-65535 to each director's
/// 3784) are outgoing, which firewalld does not filter, so nothing else is opened here.
pub fn bfd_port(cfg: &NodeConfig) -> Option<u16> {
    cfg.bfd.as_ref().map(|_| crate::report::bfd::io::PORT)
}

/// The report service: the `[report]` TCP ports and, with `[bfd]`, UDP 3784.
pub fn report_xml(tcp: &[u16], bfd: Option<u16>) -> String {
    let mut ports: Vec<Ports> = tcp.iter().map(|&p| (Proto::Tcp, (p, p))).collect();
    ports.extend(bfd.map(|p| (Proto::Udp, (p, p))));
    service_xml(
        "lvs-node reports",
        "The lvs-node agent's report endpoints for the LVS directors: /health, /status, \
         /metrics ([report] http), the HAProxy agent-check ([report] agent_check) and, with \
         [bfd], the BFD sessions (UDP 3784). Open it to the directors and the Prometheus \
         server only. Written by lvs-node.",
        &ports,
    )
}

// ---------------------------------------------------------------------------------------
// The running daemon, through firewall-cmd

/// What `firewall-cmd` says about one zone.
#[derive(Debug, Default, Clone)]
pub struct Zone {
    pub name: String,
    /// How the zone was chosen (the interface's zone, or the default zone).
    pub how: String,
    /// Port ranges open in the zone, directly or through its services.
    pub open: Vec<Ports>,
    /// Port ranges open to one source only, by rich rules.
    pub rich: Vec<(IpAddr, Ports)>,
}

fn firewall_cmd(args: &[&str]) -> Result<(i32, String), String> {
    let out = Command::new("firewall-cmd")
        .args(args)
        .output()
        .map_err(|e| format!("run firewall-cmd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((out.status.code().unwrap_or(-1), text))
}

/// None when firewall-cmd is missing or firewalld is not running.
pub fn running() -> Option<bool> {
    crate::dataplane::arp::find_tool("firewall-cmd")?;
    Some(matches!(firewall_cmd(&["--state"]), Ok((0, s)) if s == "running"))
}

/// Parses `2811/tcp 50000-51000/tcp 3784/udp` (other protocols, e.g. sctp, are left out).
pub fn parse_ports(s: &str) -> Vec<Ports> {
    s.split_whitespace()
        .filter_map(|w| {
            let (p, proto) = w.rsplit_once('/')?;
            let proto = match proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => return None,
            };
            let r = match p.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => p.parse().ok().map(|x| (x, x))?,
            };
            Some((proto, r))
        })
        .collect()
}

/// The zone of `iface` (else the default zone) and the ports it opens.
pub fn zone_for(iface: &str) -> Result<Zone, String> {
    let (code, z) = firewall_cmd(&[&format!("--get-zone-of-interface={iface}")])?;
    let (name, how) = if code == 0 && !z.is_empty() {
        (z, format!("the zone of {iface}"))
    } else {
        let (code, d) = firewall_cmd(&["--get-default-zone"])?;
        if code != 0 || d.is_empty() {
            return Err("firewall-cmd --get-default-zone failed".into());
        }
        (d, format!("the default zone ({iface} is in no zone)"))
    };
    let zarg = format!("--zone={name}");
    let (_, ports) = firewall_cmd(&[&zarg, "--list-ports"])?;
    let mut open = parse_ports(&ports);
    let service_ports = |svc: &str| -> Vec<Ports> {
        let Ok((_, info)) = firewall_cmd(&[&format!("--info-service={svc}")]) else {
            return Vec::new();
        };
        info.lines()
            .filter_map(|l| l.trim().strip_prefix("ports:"))
            .flat_map(parse_ports)
            .collect()
    };
    let (_, services) = firewall_cmd(&[&zarg, "--list-services"])?;
    for svc in services.split_whitespace() {
        open.extend(service_ports(svc));
    }
    let (_, rules) = firewall_cmd(&[&zarg, "--list-rich-rules"])?;
    let rich = parse_rich(&rules, &service_ports);
    Ok(Zone {
        name,
        how,
        open,
        rich,
    })
}

/// The ports this node must accept: GridFTP control and data, the report endpoints, port 80
/// when the ACME responder runs (all TCP), and UDP 3784 with `[bfd]`.
pub fn needed(cfg: &NodeConfig, gf: &GridftpSettings) -> Vec<Need> {
    let mut v: Vec<Need> = control_ports(cfg)
        .into_iter()
        .map(|p| Need::tcp((p, p), "GridFTP control (VIP service port)"))
        .collect();
    if let Some(r) = data_range(gf) {
        v.push(Need::tcp(r, "GridFTP passive data range"));
    }
    let r = &cfg.daemon.report;
    // Only the directors when the allow list names them and nothing is public.
    let directors: &[IpAddr] = if r.public_health { &[] } else { &r.allow };
    if let Some(a) = r.http {
        v.push(
            Need::tcp(
                (a.port(), a.port()),
                "[report] http (directors' health check, /metrics)",
            )
            .from(directors),
        );
    }
    if let Some(a) = r.agent_check {
        v.push(Need::tcp((a.port(), a.port()), "[report] agent_check (HAProxy)").from(directors));
    }
    for (a, v4, what) in [
        (
            r.http6,
            r.http,
            "[report] http6 (IPv6 health check, /metrics)",
        ),
        (
            r.agent_check6,
            r.agent_check,
            "[report] agent_check6 (HAProxy over IPv6)",
        ),
    ] {
        if let Some(a) = a.filter(|a| Some(a.port()) != v4.map(|b| b.port())) {
            v.push(Need::tcp((a.port(), a.port()), what).from(directors));
        }
    }
    if cfg.acme.is_some() {
        v.push(Need::tcp((80, 80), "[acme] HTTP-01 challenges"));
    }
    if let Some(p) = bfd_port(cfg) {
        v.push(Need {
            proto: Proto::Udp,
            ports: (p, p),
            what: "[bfd] BFD control packets from the directors".into(),
            sources: Vec::new(),
        });
    }
    v
}

fn covers(open: &[Ports], n: &Need) -> bool {
    let same: Vec<(u16, u16)> = open
        .iter()
        .filter(|(p, _)| *p == n.proto)
        .map(|&(_, r)| r)
        .collect();
    covered(&same, n.ports.0, n.ports.1)
}

/// The sources of `n` that `zone` does not let in (all of them for a need of everyone).
fn sources_missing<'a>(zone: &Zone, n: &'a Need) -> Vec<&'a IpAddr> {
    n.sources
        .iter()
        .filter(|s| {
            let mine: Vec<Ports> = zone
                .rich
                .iter()
                .filter(|(a, _)| a == *s)
                .map(|&(_, p)| p)
                .collect();
            !covers(&mine, n)
        })
        .collect()
}

/// The needs the zone does not cover: a port counts only as open for its own protocol, and
/// a need of the directors alone is covered by the port open to all, or by rich rules for
/// every director.
pub fn missing<'a>(needs: &'a [Need], zone: &Zone) -> Vec<&'a Need> {
    needs
        .iter()
        .filter(|n| {
            !covers(&zone.open, n) && (n.sources.is_empty() || !sources_missing(zone, n).is_empty())
        })
        .collect()
}

/// The commands that open `missing` in `zone`, permanently and now: `--add-port` for what
/// every client needs, a rich rule per director not let in yet for what only they need.
pub fn fix_lines(zone: &Zone, missing: &[&Need]) -> Vec<String> {
    let z = &zone.name;
    let mut v = Vec::new();
    for n in missing {
        if n.sources.is_empty() {
            v.push(format!(
                "firewall-cmd --permanent --zone={z} --add-port={}",
                n.spec()
            ));
        } else {
            for s in sources_missing(zone, n) {
                v.push(format!(
                    "firewall-cmd --permanent --zone={z} --add-rich-rule='{}'",
                    rich_rule(*s, (n.proto, n.ports))
                ));
            }
        }
    }
    v.push("firewall-cmd --reload".into());
    v
}

/// Whether the union of `have` covers a..=b.
pub fn covered(have: &[(u16, u16)], a: u16, b: u16) -> bool {
    let mut v = have.to_vec();
    v.sort();
    let mut next = a as u32;
    for (x, y) in v {
        if x as u32 > next {
            continue;
        }
        next = next.max(y as u32 + 1);
        if next > b as u32 {
            return true;
        }
    }
    next > b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_and_ports() {
        let x = gridftp_xml(&[2811], (50000, 51000));
        assert!(x.contains("<port protocol=\"tcp\" port=\"2811\"/>"), "{x}");
        assert!(
            x.contains("<port protocol=\"tcp\" port=\"50000-51000\"/>"),
            "{x}"
        );
        assert_eq!(
            parse_ports("2811/tcp 50000-51000/tcp 3784/udp 9/sctp"),
            vec![
                (Proto::Tcp, (2811, 2811)),
                (Proto::Tcp, (50000, 51000)),
                (Proto::Udp, (3784, 3784))
            ]
        );
        let needs = vec![
            Need::tcp((2811, 2811), "c"),
            Need::tcp((50000, 50100), "d"),
            Need {
                proto: Proto::Udp,
                ports: (3784, 3784),
                what: "b".into(),
                sources: Vec::new(),
            },
        ];
        // 3784 open for TCP only does not open BFD's UDP port.
        let open = [
            (Proto::Tcp, (2811, 2811)),
            (Proto::Tcp, (50000, 50049)),
            (Proto::Tcp, (3784, 3784)),
        ];
        let zone = Zone {
            name: "public".into(),
            how: String::new(),
            open: open.to_vec(),
            rich: Vec::new(),
        };
        let m = missing(&needs, &zone);
        assert_eq!(m.len(), 2);
        assert_eq!(
            fix_lines(&zone, &m),
            vec![
                "firewall-cmd --permanent --zone=public --add-port=50000-50100/tcp".to_string(),
                "firewall-cmd --permanent --zone=public --add-port=3784/udp".to_string(),
                "firewall-cmd --reload".to_string()
            ]
        );
        // A need of the directors alone: a rich rule for each director not let in yet.
        let d1: IpAddr = "192.0.2.2".parse().unwrap();
        let d2: IpAddr = "2001:db8::2".parse().unwrap();
        let only = vec![Need::tcp((8080, 8080), "r").from(&[d1, d2])];
        let rules = format!(
            "{}\nrule family=\"ipv4\" source address=\"192.0.2.9\" service name=\"svc\" accept\n",
            rich_rule(d1, (Proto::Tcp, (8080, 8080)))
        );
        let rich = parse_rich(&rules, &|s| {
            if s == "svc" {
                vec![(Proto::Tcp, (8080, 8081))]
            } else {
                vec![]
            }
        });
        assert_eq!(
            rich,
            vec![
                (d1, (Proto::Tcp, (8080, 8080))),
                ("192.0.2.9".parse().unwrap(), (Proto::Tcp, (8080, 8081)))
            ]
        );
        let zone = Zone { rich, ..zone };
        let m = missing(&only, &zone);
        assert_eq!(
            fix_lines(&zone, &m),
            vec![
                "firewall-cmd --permanent --zone=public --add-rich-rule='rule family=\"ipv6\" source address=\"2001:db8::2\" port port=\"8080\" protocol=\"tcp\" accept'".to_string(),
                "firewall-cmd --reload".to_string()
            ]
        );
        let x = report_xml(&[8080], Some(3784));
        assert!(x.contains("<port protocol=\"tcp\" port=\"8080\"/>"), "{x}");
        assert!(x.contains("<port protocol=\"udp\" port=\"3784\"/>"), "{x}");
    }
}

#[cfg(test)]
mod packaged {
    use super::*;

    /// The service files the packages install are what the generator writes for the
    /// defaults: 2811 with 50000-51000, and the report ports 8080 and 8081 of the docs.
    #[test]
    fn packaged_services_match_the_generator() {
        assert_eq!(
            include_str!("../../../packaging/firewalld/lvs-node-gridftp.xml"),
            gridftp_xml(&[GRIDFTP_PORT], DEFAULT_DATA_RANGE)
        );
        assert_eq!(
            include_str!("../../../packaging/firewalld/lvs-node-report.xml"),
            report_xml(&[8080, 8081], None)
        );
    }
}
