//! `gridftp.data_interface`, `gridftp.port_range`: the GridFTP server's config files
//! (`key value` lines, `#` comments, `$VAR value` sets an environment variable) and its
//! service environment file (`KEY=value`).
//!
//! The trap: in passive mode the server tells the client which address to open the data
//! connection to. That is `data_interface` (or `hostname`, which sets it), and without
//! either it is the local address of the control connection, which under LVS-DR is the VIP.
//! If the director balances only 2811, a data connection to the VIP lands on any node (or
//! none) and the transfer hangs.

use super::Finding;
use lvs_shared::config::NodeConfig;
use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// One value and where it came from (`/etc/gridftp.conf:12`).
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub value: String,
    pub source: String,
}

#[derive(Debug, Clone, Default)]
pub struct GridftpSettings {
    /// Config files that were read.
    pub files: Vec<PathBuf>,
    /// Config files named but absent or unreadable.
    pub missing: Vec<PathBuf>,
    /// Keys from the config files (last one wins); `$VAR` keys keep their `$`.
    pub conf: BTreeMap<String, Setting>,
    /// Variables from the environment file.
    pub env: BTreeMap<String, Setting>,
    pub sysconfig: Option<PathBuf>,
}

/// The load order of globus-gridftp-server: the files of the config directory in
/// alphabetical order (backups and package leftovers skipped), then the main file last.
pub fn default_files(main: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    !(n.starts_with('.')
                        || n.ends_with('~')
                        || [
                            ".rpmsave",
                            ".rpmnew",
                            ".rpmorig",
                            ".bak",
                            ".dpkg-old",
                            ".dpkg-new",
                            ".dpkg-dist",
                        ]
                        .iter()
                        .any(|s| n.ends_with(s)))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.push(main.to_path_buf());
    v
}

/// Parses `key value` lines; returns (key, value, line number).
pub fn parse_conf(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (k, v) = match l.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (l, ""),
        };
        let v = v.trim_matches('"').to_string();
        out.push((k.to_string(), v, i + 1));
    }
    out
}

/// Parses a shell-style environment file (`KEY=value`, `export KEY="value"`).
pub fn parse_env(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l).trim();
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string(), i + 1));
    }
    out
}

/// `START,END` (GridFTP's format; a space is tolerated).
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once(',')
        .or_else(|| s.trim().split_once(char::is_whitespace))
        .ok_or_else(|| format!("`{s}` is not START,END"))?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not START,END"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not START,END"))?;
    if a == 0 || b < a {
        return Err(format!(
            "`{s}`: START must be 1 or more and END at least START"
        ));
    }
    Ok((a, b))
}

impl GridftpSettings {
    pub fn load(files: &[PathBuf], sysconfig: Option<&Path>) -> GridftpSettings {
        let mut s = GridftpSettings::default();
        for f in files {
            match std::fs::read_to_string(f) {
                Ok(text) => {
                    for (k, v, n) in parse_conf(&text) {
                        s.conf.insert(
                            k,
                            Setting {
                                value: v,
                                source: format!("{}:{n}", f.display()),
                            },
                        );
                    }
                    s.files.push(f.clone());
                }
                Err(_) => s.missing.push(f.clone()),
            }
        }
        if let Some(p) = sysconfig {
            if let Ok(text) = std::fs::read_to_string(p) {
                for (k, v, n) in parse_env(&text) {
                    s.env.insert(
                        k,
                        Setting {
                            value: v,
                            source: format!("{}:{n}", p.display()),
                        },
                    );
                }
                s.sysconfig = Some(p.to_path_buf());
            }
        }
        s
    }

    fn conf(&self, k: &str) -> Option<&Setting> {
        self.conf.get(k).filter(|s| !s.value.is_empty())
    }

    /// An environment variable as the server sees it: `$VAR` in a config file, else the
    /// environment file.
    pub fn env_var(&self, k: &str) -> Option<&Setting> {
        self.conf(&format!("${k}"))
            .or_else(|| self.env.get(k).filter(|s| !s.value.is_empty()))
    }

    /// The data port range and where it is set (`port_range` wins over the variable).
    pub fn port_range(&self) -> Option<(&'static str, &Setting)> {
        self.conf("port_range")
            .map(|s| ("port_range", s))
            .or_else(|| {
                self.env_var("GLOBUS_TCP_PORT_RANGE")
                    .map(|s| ("GLOBUS_TCP_PORT_RANGE", s))
            })
    }

    /// The address passive replies advertise, when configured: `data_interface`, else
    /// `hostname` (which sets control, data and ipc interfaces).
    pub fn data_interface(&self) -> Option<(&'static str, &Setting)> {
        self.conf("data_interface")
            .map(|s| ("data_interface", s))
            .or_else(|| self.conf("hostname").map(|s| ("hostname", s)))
    }

    /// The host name GridFTP uses for itself: `hostname`, else None (the system hostname).
    pub fn hostname(&self) -> Option<&Setting> {
        self.conf("hostname")
    }

    pub fn x509_user_cert(&self) -> Option<&Setting> {
        self.env_var("X509_USER_CERT")
    }

    pub fn files_text(&self) -> String {
        if self.files.is_empty() {
            "none".into()
        } else {
            self.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// Resolves an address or host name (blocking; the resolver's own timeouts apply).
pub fn resolve(name: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut v: Vec<IpAddr> = (name, 0u16)
        .to_socket_addrs()
        .map_err(|e| format!("`{name}` does not resolve: {e}"))?
        .map(|a| a.ip())
        .collect();
    v.dedup();
    if v.is_empty() {
        return Err(format!("`{name}` resolves to nothing"));
    }
    Ok(v)
}

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
                connection to. Under LVS-DR that is the VIP, and the director balances only the \
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
                    "looked at: {}\nWithout data_interface the server advertises the address of \
                     the control connection, which under LVS-DR is the VIP.",
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
            // Unset: the control interface, i.e. the VIP for every client of the pool.
            let narrow: Vec<String> = cfg
                .vips
                .iter()
                .filter(|v| !covers(&v.ports, good_range))
                .map(|v| v.address.to_string())
                .collect();
            if narrow.is_empty() {
                return Finding::ok(
                    ID,
                    "data_interface not set, but the VIPs balance the data port range",
                    "make sure the director uses source-IP persistence for the range",
                );
            }
            return Finding::error(
                ID,
                "data_interface not set: passive replies advertise the VIP",
                format!(
                    "read: {}\nWithout data_interface (or hostname) the server advertises the \
                     local address of the control connection, which is the VIP ({}) for clients \
                     that come through the director.\n{trap}",
                    gf.files_text(),
                    narrow.join(", ")
                ),
                fix_vip,
            );
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
