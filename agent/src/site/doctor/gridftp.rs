//! `gridftp.data_interface`, `gridftp.port_range`: the GridFTP server's config files
//! (`key value` lines, `#` comments, `$VAR value` sets an environment variable) and its
//! service environment file (`KEY=value`).
//!
//! The trap: in passive mode the server tells the client which address to open the data
//! connection to. That is `data_interface` (or `hostname`, which sets it), and without
//! either it is what the system host name resolves to (seen with globus-gridftp-server 13 in
//! the lab: not the control connection's local address). If that is the VIP and the director
//! balances only 2811, a data connection to the VIP lands on any node (or none) and the
//! transfer hangs.

use super::Finding;
use crate::site::gridftp_conf::{parse_range, resolve, GridftpSettings, Setting};
use lvs_shared::config::NodeConfig;

fn covers(ports: &[u16], range: Option<(u16, u16)>) -> bool {
    match range {
        Some((a, b)) => (a..=b).all(|p| ports.contains(&p)),
        None => false,
    }
}

pub fn findings(cfg: &NodeConfig, gf: &GridftpSettings) -> Vec<Finding> {
    let range = gf.port_range().map(|(k, s)| (k, s, parse_range(&s.value)));
    vec![
        control_interface(cfg, gf),
        data_interface(cfg, gf, &range),
        port_range(gf, &range),
    ]
}

/// `gridftp.control_interface`: the server must accept connections to the VIP. With
/// `control_interface` (or `hostname`) set to the real IP it listens only there, and the
/// connections the director forwards (destination VIP) are refused.
fn control_interface(cfg: &NodeConfig, gf: &GridftpSettings) -> Finding {
    const ID: &str = "gridftp.control_interface";
    let set = gf
        .conf("control_interface")
        .map(|s| ("control_interface", s))
        .or_else(|| gf.conf("hostname").map(|s| ("hostname", s)));
    let Some((key, s)) = set else {
        return Finding::ok(
            ID,
            "the server listens on all addresses (the VIP included)",
            "neither control_interface nor hostname is set",
        );
    };
    let addrs = match resolve(&s.value) {
        Ok(a) => a,
        Err(e) => {
            return Finding::error(
                ID,
                format!("{key} `{}` does not resolve", s.value),
                format!("{e} (at {})", s.source),
                format!("remove {key} so the server listens on all addresses"),
            )
        }
    };
    if addrs.iter().any(|a| a.is_unspecified()) {
        return Finding::ok(
            ID,
            format!("{key} {}: all addresses", s.value),
            s.source.clone(),
        );
    }
    let missed: Vec<String> = cfg
        .vips
        .iter()
        .filter(|v| !addrs.contains(&v.address))
        .map(|v| v.address.to_string())
        .collect();
    if missed.is_empty() {
        return Finding::ok(
            ID,
            format!("{key} {} is the VIP", s.value),
            "the server listens only on the VIP: directors' TCP checks must target the VIP              through the node, not its real IP",
        );
    }
    Finding::error(
        ID,
        format!("{key} {} makes the server listen only there, not on the VIP", s.value),
        format!(
            "set at {}; {key} sets the control interface, so connections the director forwards              to {}:2811 (DR keeps the VIP as destination) are refused.",
            s.source,
            missed.join(", ")
        ),
        format!(
            "remove {key} and set only `data_interface {}` (the address passive replies advertise)",
            cfg.real_ip
                .map(|r| r.to_string())
                .unwrap_or_else(|| "REAL_IP".into())
        ),
    )
}

type RangeSetting<'a> = Option<(&'static str, &'a Setting, Result<(u16, u16), String>)>;

fn data_interface(cfg: &NodeConfig, gf: &GridftpSettings, range: &RangeSetting) -> Finding {
    const ID: &str = "gridftp.data_interface";
    let rip = cfg
        .real_ip
        .map(|r| r.to_string())
        .unwrap_or_else(|| "<real IP>".into());
    let good_range = range.as_ref().and_then(|(_, _, r)| r.clone().ok());
    let fix_vip = format!(
        "set `data_interface {rip}` (this node's real IP) in /etc/gridftp.conf and restart the \
         server: data connections then go straight to this node, and the director balances only \
         2811.\nAlternatively balance the whole data port range on the director with source-IP \
         persistence (a firewall mark over 2811 and the range, `ipvsadm -p`) and list it in \
         [[vip]] ports."
    );
    let trap = "In passive mode the server tells the client which address to open the data \
                connection to. Here that is the VIP, and the director balances only the \
                control port, so the data connection is dropped or lands on another node: the \
                login works and every transfer hangs.";
    let (what, addrs) = match gf.data_interface() {
        Some((key, s)) => match resolve(&s.value) {
            Ok(a) => (format!("{key} {} ({})", s.value, s.source), a),
            Err(e) => {
                return Finding::error(
                    ID,
                    format!("{key} `{}` does not resolve", s.value),
                    format!("{} (set at {})", e, s.source),
                    format!("set `data_interface {rip}` (an IP address, no lookup needed)"),
                )
            }
        },
        None if gf.files.is_empty() => {
            return Finding::warn(
                ID,
                "no GridFTP config found: data_interface not checked",
                format!(
                    "looked at: {}\nWithout data_interface (or hostname) the server advertises the \
                     address its host name resolves to.",
                    gf.missing
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "create /etc/gridftp.conf with `data_interface {rip}` (or pass --gridftp-conf PATH \
                     if the server reads another file)"
                ),
            )
        }
        None => {
            // Unset: the server advertises what the system host name resolves to.
            let host = match nix::unistd::gethostname() {
                Ok(h) => h.to_string_lossy().into_owned(),
                Err(e) => {
                    return Finding::error(
                        ID,
                        "data_interface not set, and the system hostname cannot be read",
                        e.to_string(),
                        format!("set `data_interface {rip}` in /etc/gridftp.conf"),
                    )
                }
            };
            match resolve(&host) {
                Ok(a) => (
                    format!(
                        "data_interface not set: the system hostname `{host}` ({})",
                        gf.files_text()
                    ),
                    a,
                ),
                Err(e) => {
                    return Finding::error(
                        ID,
                        format!("data_interface not set, and the system hostname `{host}` does not resolve"),
                        format!(
                            "{e}\nWithout data_interface (or hostname) the server advertises the \
                             address its host name resolves to."
                        ),
                        format!("set `data_interface {rip}` (an IP address, no lookup needed)"),
                    )
                }
            }
        }
    };
    let vip_hit: Vec<&lvs_shared::config::Vip> = cfg
        .vips
        .iter()
        .filter(|v| addrs.contains(&v.address))
        .collect();
    if vip_hit.is_empty() {
        let a: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        if addrs.iter().any(|a| a.is_loopback()) {
            return Finding::error(
                ID,
                format!("{what} is a loopback address"),
                "passive replies would tell remote clients to connect to 127.0.0.1".to_string(),
                format!("set `data_interface {rip}`"),
            );
        }
        let mut detail = format!("passive replies advertise {}", a.join(", "));
        if let Some(r) = cfg.real_ip {
            if !addrs.contains(&r) {
                detail.push_str(&format!(
                    " (not real_ip {r}: is that address on this node?)"
                ));
            }
        }
        return Finding::ok(
            ID,
            format!("{what}: data goes straight to this node"),
            detail,
        );
    }
    let narrow: Vec<String> = vip_hit
        .iter()
        .filter(|v| !covers(&v.ports, good_range))
        .map(|v| {
            let p = if v.ports.is_empty() {
                "no ports listed".to_string()
            } else {
                format!(
                    "ports {}",
                    v.ports
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            format!("{} ({p})", v.address)
        })
        .collect();
    if narrow.is_empty() {
        return Finding::ok(
            ID,
            format!("{what} is the VIP, and the VIP balances the data port range"),
            "the director must keep each client on one node: use source-IP persistence or a \
             firewall mark over 2811 and the range",
        );
    }
    Finding::error(
        ID,
        format!("{what} is the VIP while only the control port is balanced"),
        format!("VIP {}\n{trap}", narrow.join(", ")),
        fix_vip,
    )
}

fn port_range(gf: &GridftpSettings, range: &RangeSetting) -> Finding {
    const ID: &str = "gridftp.port_range";
    let example = "add `port_range 50000,51000` to /etc/gridftp.conf (or \
                   GLOBUS_TCP_PORT_RANGE=50000,51000 to /etc/sysconfig/globus-gridftp-server), \
                   restart the server and open that range in the firewall, e.g.\n\
                   nft add rule inet filter input tcp dport 50000-51000 accept";
    match range {
        None => Finding::warn(
            ID,
            "no data port range (port_range / GLOBUS_TCP_PORT_RANGE)",
            format!(
                "read: {}{}\nWithout a range the server opens passive data ports anywhere in the \
                 ephemeral range (32768-60999), which no firewall rule can open narrowly: \
                 transfers hang at the first data connection behind a firewall.",
                gf.files_text(),
                gf.sysconfig
                    .as_ref()
                    .map(|p| format!(", {}", p.display()))
                    .unwrap_or_default()
            ),
            example,
        ),
        Some((key, s, Err(e))) => Finding::error(
            ID,
            format!("{key} is malformed"),
            format!("{e} (at {})", s.source),
            example,
        ),
        Some((key, s, Ok((a, b)))) => {
            let mut detail = format!("{key} at {}", s.source);
            if let Some(src) = gf.env_var("GLOBUS_TCP_SOURCE_RANGE") {
                detail.push_str(&format!(
                    "; outgoing data ports GLOBUS_TCP_SOURCE_RANGE={} ({})",
                    src.value, src.source
                ));
            }
            Finding::ok(ID, format!("data ports {a}-{b}"), detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::gridftp_conf::*;

    #[test]
    fn parses_conf_and_env() {
        let c = parse_conf(
            "# c\nport 2811\n\ndata_interface   192.0.2.11\n$GLOBUS_TCP_PORT_RANGE 50000,51000\nhostname \"a.b\"\n",
        );
        assert_eq!(c[1], ("data_interface".into(), "192.0.2.11".into(), 4));
        assert_eq!(c[2].0, "$GLOBUS_TCP_PORT_RANGE");
        assert_eq!(c[3].1, "a.b");
        let e = parse_env(
            "# x\nexport GLOBUS_TCP_PORT_RANGE=\"50000,51000\"\nX509_USER_CERT='/a b'\nbad line\n",
        );
        assert_eq!(
            e[0],
            ("GLOBUS_TCP_PORT_RANGE".into(), "50000,51000".into(), 2)
        );
        assert_eq!(e[1].1, "/a b");
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("50000,51000"), Ok((50000, 51000)));
        assert_eq!(parse_range("50000, 51000"), Ok((50000, 51000)));
        assert!(parse_range("50000-51000").is_err());
        assert!(parse_range("51000,50000").is_err());
    }

    #[test]
    fn main_file_loads_last_and_wins() {
        let d = std::env::temp_dir().join(format!("doctor-gf-{}", std::process::id()));
        std::fs::create_dir_all(d.join("gridftp.d")).unwrap();
        std::fs::write(
            d.join("gridftp.d/10-a"),
            "data_interface 192.0.2.100\nport_range 1,2\n",
        )
        .unwrap();
        std::fs::write(d.join("gridftp.d/20-b.rpmsave"), "port_range 3,4\n").unwrap();
        std::fs::write(d.join("gridftp.conf"), "data_interface 192.0.2.11\n").unwrap();
        let files = default_files(&d.join("gridftp.conf"), &d.join("gridftp.d"));
        assert_eq!(files.len(), 2);
        let s = GridftpSettings::load(&files, None);
        assert_eq!(s.data_interface().unwrap().1.value, "192.0.2.11");
        assert_eq!(s.port_range().unwrap().1.value, "1,2");
        let _ = std::fs::remove_dir_all(d);
    }
}
