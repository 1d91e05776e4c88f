//! The node config, `/etc/lvs-node/node.toml`. Parsing and the checks that need no host
//! access live here; checks against the live host (interfaces, tools) live in the agent.
//!
//! The keys `interface`, `real_ip`, `state_dir`, `[arp] method` and `[[vip]] address /
//! device / ports` are fixed: directors' docs and tests depend on them.

pub mod acme;
pub mod bfd;
pub mod check;
pub mod daemon;
pub mod redirect;
pub mod tls;

use crate::error::ConfigError;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/lvs-node/node.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/lvs-node";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ArpMethod {
    #[default]
    Sysctl,
    Arptables,
    Nftables,
}

impl ArpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ArpMethod::Sysctl => "sysctl",
            ArpMethod::Arptables => "arptables",
            ArpMethod::Nftables => "nftables",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interface: Option<String>,
    real_ip: Option<String>,
    real_ip6: Option<String>,
    state_dir: Option<String>,
    #[serde(default)]
    arp: RawArp,
    #[serde(default)]
    vip: Vec<RawVip>,
    #[serde(default)]
    daemon: daemon::RawDaemon,
    #[serde(default)]
    check: Vec<check::RawCheck>,
    #[serde(default)]
    report: daemon::RawReport,
    #[serde(default)]
    weight: daemon::RawWeight,
    #[serde(default)]
    pool: daemon::RawPool,
    acme: Option<acme::RawAcme>,
    bfd: Option<bfd::RawBfd>,
    #[serde(default)]
    redirect: Vec<redirect::RawRedirect>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawArp {
    #[serde(default)]
    method: ArpMethod,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVip {
    address: Option<String>,
    device: Option<String>,
    #[serde(default)]
    ports: Vec<i64>,
    hostname: Option<String>,
}

/// One virtual IP as the agent manages it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vip {
    pub address: IpAddr,
    pub prefix: u8,
    pub device: String,
    pub ports: Vec<u16>,
    /// The virtual hostname (used by certificate checks and lvs-cert); optional.
    pub hostname: Option<String>,
}

impl Vip {
    pub fn is_v4(&self) -> bool {
        self.address.is_ipv4()
    }
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.address, self.prefix)
    }
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub file: PathBuf,
    pub interface: String,
    pub real_ip: Option<IpAddr>,
    /// The node's IPv6 address for IPv6 VIPs (directors send there); None: the NIC's
    /// global IPv6 address, found at run time.
    pub real_ip6: Option<IpAddr>,
    pub state_dir: PathBuf,
    pub arp_method: ArpMethod,
    pub vips: Vec<Vip>,
    pub daemon: daemon::Settings,
    pub acme: Option<acme::Settings>,
    /// `[[redirect]]` listeners on VIPs (HTTP uploads that bypass the director).
    pub redirects: Vec<redirect::Redirect>,
    /// `[bfd]`: BFD sessions to the directors; None without the table.
    pub bfd: Option<bfd::Bfd>,
}

impl NodeConfig {
    /// Reads and validates a config file. Touches nothing on the host.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path,
                "(file)",
                format!("cannot read the config: {e}"),
                format!(
                    "create it (see the config reference in README.md) or pass --config PATH; default is {DEFAULT_PATH}"
                ),
            )
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let err = |key: &str, problem: String, fix: &str| ConfigError::new(path, key, problem, fix);

        let interface = raw.interface.ok_or_else(|| {
            err(
                "interface",
                "missing".into(),
                "set `interface = \"eth0\"` to the NIC that faces the directors",
            )
        })?;
        check_ifname(&interface).map_err(|p| {
            err(
                "interface",
                p,
                "use the kernel name of the NIC, as `ip link` shows it",
            )
        })?;
        let real_ip = match raw.real_ip {
            None => None,
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                err(
                    "real_ip",
                    format!("`{s}` is not an IP address"),
                    "write the node's own address without a prefix, e.g. `real_ip = \"192.0.2.11\"`",
                )
            })?),
        };
        let real_ip6 = match raw.real_ip6 {
            None => None,
            Some(s) => match s.parse::<IpAddr>() {
                Ok(a @ IpAddr::V6(v6)) if !v6.is_unspecified() && !v6.is_loopback() => Some(a),
                _ => {
                    return Err(err(
                        "real_ip6",
                        format!("`{s}` is not a usable IPv6 address"),
                        "write the node's global IPv6 address without a prefix, e.g. `real_ip6 = \"2001:db8::11\"`, or leave it out to use the interface's",
                    ))
                }
            },
        };
        let state_dir = PathBuf::from(raw.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()));
        if !state_dir.is_absolute() {
            return Err(err(
                "state_dir",
                format!("`{}` is not an absolute path", state_dir.display()),
                "use an absolute directory such as /var/lib/lvs-node",
            ));
        }
        let method = raw.arp.method;
        if raw.vip.is_empty() {
            return Err(err(
                "vip",
                "no [[vip]] table".into(),
                "add at least one [[vip]] with `address = \"...\"`",
            ));
        }
        let mut vips = Vec::new();
        let mut seen = HashSet::new();
        for (i, rv) in raw.vip.into_iter().enumerate() {
            let k = |f: &str| format!("vip[{i}].{f}");
            let addr_s = rv.address.ok_or_else(|| {
                err(
                    &k("address"),
                    "missing".into(),
                    "set `address = \"192.0.2.100\"` (optional /prefix)",
                )
            })?;
            let (address, prefix) = parse_cidr(&addr_s).map_err(|p| {
                err(
                    &k("address"),
                    p,
                    "write an IPv4 or IPv6 address with an optional /prefix, e.g. \"192.0.2.100\" or \"2001:db8::100/128\"",
                )
            })?;
            if address.is_unspecified() || address.is_loopback() || address.is_multicast() {
                return Err(err(
                    &k("address"),
                    format!(
                        "{address} cannot be a virtual IP (unspecified, loopback or multicast)"
                    ),
                    "use the unicast VIP that the directors balance",
                ));
            }
            if let IpAddr::V4(v4) = address {
                if v4.is_broadcast() || v4.is_link_local() {
                    return Err(err(
                        &k("address"),
                        format!("{address} is broadcast or link-local"),
                        "use the unicast VIP that the directors balance",
                    ));
                }
            }
            if !seen.insert(address) {
                return Err(err(
                    &k("address"),
                    format!("{address} is listed twice"),
                    "remove the duplicate [[vip]] table",
                ));
            }
            let device = rv.device.unwrap_or_else(|| "lo".into());
            if device != "lo" && device != interface {
                return Err(err(
                    &k("device"),
                    format!("`{device}` is neither \"lo\" nor the interface `{interface}`"),
                    "set device = \"lo\" (recommended) or to the value of `interface`",
                ));
            }
            let full = if address.is_ipv4() { 32 } else { 128 };
            if device == "lo" && prefix != full {
                return Err(err(
                    &k("address"),
                    format!("/{prefix} on lo would make the host claim the whole subnet as local"),
                    &format!("drop the prefix or write /{full} for a VIP on lo"),
                ));
            }
            if device != "lo" && address.is_ipv6() {
                return Err(err(
                    &k("device"),
                    "an IPv6 VIP on the NIC would answer neighbour solicitations for it".into(),
                    "put IPv6 VIPs on lo: the kernel answers NDP only for addresses on the receiving interface, so there the VIP stays hidden",
                ));
            }
            if device != "lo" && method == ArpMethod::Sysctl {
                return Err(err(
                    &k("device"),
                    format!("arp method \"sysctl\" cannot hide {address} on `{device}`: with arp_ignore=1 the kernel still answers for addresses on the receiving interface"),
                    "put the VIP on lo (device = \"lo\"), or set [arp] method = \"arptables\" or \"nftables\"",
                ));
            }
            if Some(address) == real_ip || Some(address) == real_ip6 {
                return Err(err(
                    &k("address"),
                    format!(
                        "{address} is the node's real_ip{}",
                        if address.is_ipv6() && Some(address) == real_ip6 {
                            "6"
                        } else {
                            ""
                        }
                    ),
                    "the VIP must be the shared virtual address, not this node's own address",
                ));
            }
            let mut ports = Vec::new();
            for p in rv.ports {
                if !(1..=65535).contains(&p) {
                    return Err(err(
                        &k("ports"),
                        format!("port {p} is out of range"),
                        "use TCP ports between 1 and 65535, e.g. ports = [2811]",
                    ));
                }
                if ports.contains(&(p as u16)) {
                    return Err(err(
                        &k("ports"),
                        format!("port {p} is listed twice"),
                        "remove the duplicate port",
                    ));
                }
                ports.push(p as u16);
            }
            if let Some(h) = &rv.hostname {
                if h.is_empty() || h.len() > 253 || h.contains(char::is_whitespace) {
                    return Err(err(
                        &k("hostname"),
                        format!("`{h}` is not a hostname"),
                        "write the virtual hostname, e.g. gridftp.example.org",
                    ));
                }
            }
            vips.push(Vip {
                address,
                prefix,
                device,
                ports,
                hostname: rv.hostname,
            });
        }
        if method != ArpMethod::Sysctl {
            if let Some(IpAddr::V6(_)) = real_ip {
                if vips.iter().any(|v| v.is_v4()) {
                    return Err(err(
                        "real_ip",
                        "ARP rules need the node's IPv4 address".into(),
                        "set real_ip to the IPv4 address of the interface, or leave it out",
                    ));
                }
            }
        }
        let daemon = daemon::validate(
            path,
            daemon::RawSections {
                daemon: raw.daemon,
                checks: raw.check,
                report: raw.report,
                weight: raw.weight,
                pool: raw.pool,
            },
            &vips,
        )?;
        let acme = match raw.acme {
            Some(a) => Some(acme::validate(path, a)?),
            None => None,
        };
        let bfd = match raw.bfd {
            Some(b) => Some(bfd::validate(path, b, real_ip, real_ip6)?),
            None => None,
        };
        let vip_addrs: Vec<IpAddr> = vips.iter().map(|v| v.address).collect();
        let redirects = redirect::validate(path, raw.redirect, &vip_addrs)?;
        if let Some(i) = redirects
            .iter()
            .position(|r| r.choose == redirect::Choose::Pool)
        {
            if daemon.pool.peers.is_empty() {
                return Err(err(
                    &format!("redirect[{i}].choose"),
                    "\"pool\" needs the pool's nodes, and [pool] peers is empty".into(),
                    "list every node's report endpoint in [pool] peers = [\"http://192.0.2.11:8080\", ...], or use choose = \"self\"",
                ));
            }
        }
        Ok(NodeConfig {
            file: path.to_path_buf(),
            interface,
            real_ip,
            real_ip6,
            state_dir,
            arp_method: method,
            vips,
            daemon,
            acme,
            redirects,
            bfd,
        })
    }
}

/// Parses `addr[/prefix]`; the prefix defaults to a host route.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|&n| n >= 1 && n <= max)
            .ok_or_else(|| format!("prefix `/{p}` must be between 1 and {max}"))?,
    };
    Ok((addr, prefix))
}

fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("`{name}` must be 1 to 15 characters"));
    }
    if name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("`{name}` contains '/', ':' or white space"));
    }
    Ok(())
}

/// Turns a toml/serde error into one that names the line and the key.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let msg = e.message().trim().to_string();
    let key = match line {
        Some(l) => {
            let src = text.lines().nth(l - 1).unwrap_or("").trim();
            format!("line {l} (`{src}`)")
        }
        None => "(file)".into(),
    };
    let fix = if msg.contains("unknown field") {
        "remove the key or correct its spelling; the valid keys are listed above and in README.md"
    } else if msg.contains("unknown variant") {
        "use one of the values listed above"
    } else if msg.contains("invalid type") {
        "check the value's type: strings in quotes, numbers bare, lists in [ ]"
    } else {
        "fix the TOML syntax at that line (see the config reference in README.md)"
    };
    ConfigError::new(path, key, msg, fix)
}

#[cfg(test)]
mod tests;
