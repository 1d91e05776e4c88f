//! Director snippets for this node, wired to its reporting endpoints: a keepalived
//! `real_server` (HTTP_GET on /health, or MISC_CHECK with misc_dynamic via `lvs-node
//! probe`), or HAProxy `server` lines with agent-check.

use lvs_shared::config::NodeConfig;
use std::fmt::Write;
use std::net::IpAddr;

/// Which snippet [`render`] writes.
#[derive(Debug, Clone)]
pub struct Style {
    /// HAProxy `server` lines with agent-check (else keepalived).
    pub haproxy: bool,
    /// keepalived MISC_CHECK through `lvs-node probe` (else HTTP_GET).
    pub misc_check: bool,
    /// The lvs-node binary on the director, for MISC_CHECK's misc_path.
    pub probe_path: String,
}

pub fn render(cfg: &NodeConfig, args: &Style) -> Result<String, String> {
    let rep = &cfg.daemon.report;
    let real = cfg
        .real_ip
        .or(rep.http.map(|a| a.ip()))
        .or(rep.agent_check.map(|a| a.ip()))
        .ok_or("set real_ip (or [report] http) so the director knows this node's address")?;
    let weight = cfg.daemon.weight.base;
    // Each VIP is served from the node's address of the VIP's family: an IPv6 VIP needs the
    // node's IPv6 real address (real_ip, [report] http, or the interface's global address).
    let info = crate::health::status::node_info(cfg);
    let real_for = |vip: IpAddr| -> Result<IpAddr, String> {
        let a = if vip.is_ipv4() {
            info.real_ip
        } else {
            info.real_ip6
        };
        a.ok_or_else(|| {
            format!(
                "no {} real address for VIP {vip}: {}",
                if vip.is_ipv4() { "IPv4" } else { "IPv6" },
                if vip.is_ipv4() {
                    "set real_ip to the IPv4 address of the interface"
                } else {
                    "give the interface a global IPv6 address, or set [report] http to the node's IPv6 address"
                }
            )
        })
    };
    let mut o = String::new();
    if args.haproxy {
        let agent = rep.agent_check.ok_or(
            "[report] agent_check is not set: add e.g. agent_check = \"REAL_IP:8081\" to node.toml",
        )?;
        let _ = writeln!(
            o,
            "# lvs-node {}: HAProxy server line(s) for {real}",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            o,
            "# The agent reports `up ready N%`, `drain`, `maint` or `down ... #reason`."
        );
        for v in &cfg.vips {
            let addr = real_for(v.address)?;
            let name = format!("rs-{}", addr.to_string().replace([':', '.'], "-"));
            for p in &v.ports {
                let _ = writeln!(
                    o,
                    "# backend for {}:{p}\nserver {name}-{p} {}:{p} weight {weight} check agent-check agent-addr {} agent-port {} agent-inter 1s",
                    v.address,
                    host(addr),
                    agent.ip(),
                    agent.port()
                );
            }
        }
        return Ok(o);
    }
    let http = rep
        .http
        .ok_or("[report] http is not set: add e.g. http = \"REAL_IP:8080\" to node.toml")?;
    let _ = writeln!(
        o,
        "# lvs-node {}: keepalived real_server for {real}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        o,
        "# inhibit_on_failure: a failing or drained node gets weight 0 and keeps its running\n# transfers instead of being removed (which would cut them)."
    );
    for v in &cfg.vips {
        let addr = real_for(v.address)?;
        for p in &v.ports {
            let _ = writeln!(
                o,
                "# inside: virtual_server {} {p} {{ lb_kind DR ... }}",
                v.address
            );
            crate::director::pool::real_server(&mut o, "", addr, Some(*p), weight, |o, ind| {
                crate::director::pool::checker(
                    o,
                    ind,
                    http,
                    args.misc_check,
                    &args.probe_path,
                    Some(2),
                )
            });
        }
    }
    Ok(o)
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg() -> NodeConfig {
        NodeConfig::parse(
            Path::new("/etc/lvs-node/node.toml"),
            "interface = \"eth0\"\nreal_ip = \"192.0.2.11\"\n[[vip]]\naddress = \"192.0.2.100\"\nports = [2811]\n[report]\nhttp = \"192.0.2.11:8080\"\nagent_check = \"192.0.2.11:8081\"\n",
        )
        .unwrap()
    }

    fn args(haproxy: bool, misc: bool) -> Style {
        Style {
            haproxy,
            misc_check: misc,
            probe_path: "/usr/bin/lvs-node".into(),
        }
    }

    #[test]
    fn snippets() {
        let k = render(&cfg(), &args(false, false)).unwrap();
        assert!(k.contains("real_server 192.0.2.11 2811 {"), "{k}");
        assert!(k.contains("inhibit_on_failure"));
        assert!(k.contains("connect_port 8080"));
        let m = render(&cfg(), &args(false, true)).unwrap();
        assert!(m.contains("probe --agent http://192.0.2.11:8080"), "{m}");
        assert!(m.contains("misc_path \"/usr/bin/lvs-node probe"), "{m}");
        assert!(m.contains("misc_dynamic"));
        let h = render(&cfg(), &args(true, false)).unwrap();
        assert!(h.contains("server rs-192-0-2-11-2811 192.0.2.11:2811 weight 100 check agent-check agent-addr 192.0.2.11 agent-port 8081"), "{h}");
    }

    /// An IPv6 VIP is served from the node's IPv6 real address, never its IPv4 real_ip.
    #[test]
    fn ipv6_vip_gets_the_ipv6_real_address() {
        let c = NodeConfig::parse(
            Path::new("/etc/lvs-node/node.toml"),
            "interface = \"eth0\"\nreal_ip = \"192.0.2.11\"\n\
             [[vip]]\naddress = \"192.0.2.100\"\nports = [2811]\n\
             [[vip]]\naddress = \"2001:db8::100\"\nports = [2811]\n\
             [report]\nhttp = \"[2001:db8::11]:8080\"\nagent_check = \"192.0.2.11:8081\"\n",
        )
        .unwrap();
        let k = render(&c, &args(false, false)).unwrap();
        assert!(k.contains("real_server 192.0.2.11 2811 {"), "{k}");
        assert!(k.contains("real_server 2001:db8::11 2811 {"), "{k}");
        let v6 = &k[k.find("virtual_server 2001:db8::100").unwrap()..];
        assert!(!v6.contains("real_server 192.0.2.11"), "{k}");
        let h = render(&c, &args(true, false)).unwrap();
        assert!(
            h.contains("server rs-2001-db8--11-2811 [2001:db8::11]:2811"),
            "{h}"
        );
        assert!(
            h.contains("server rs-192-0-2-11-2811 192.0.2.11:2811"),
            "{h}"
        );
        // `real_ip6` names the IPv6 real server, before any other source.
        let c = NodeConfig::parse(
            Path::new("/etc/lvs-node/node.toml"),
            "interface = \"eth0\"\nreal_ip = \"192.0.2.11\"\nreal_ip6 = \"2001:db8::21\"\n\
             [[vip]]\naddress = \"2001:db8::100\"\nports = [2811]\n\
             [report]\nhttp = \"[2001:db8::11]:8080\"\n",
        )
        .unwrap();
        let k = render(&c, &args(false, false)).unwrap();
        assert!(k.contains("real_server 2001:db8::21 2811 {"), "{k}");
        for (bad, why) in [
            ("192.0.2.11", "not a usable IPv6"),
            ("::1", "not a usable IPv6"),
            ("2001:db8::100", "is the node's real_ip6"),
        ] {
            let e = NodeConfig::parse(
                Path::new("/etc/lvs-node/node.toml"),
                &format!(
                    "interface = \"eth0\"\nreal_ip6 = \"{bad}\"\n[[vip]]\naddress = \"2001:db8::100\"\nports = [2811]\n"
                ),
            )
            .unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
