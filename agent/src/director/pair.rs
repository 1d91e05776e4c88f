//! A VRRP pair (or group) of directors from one command: `director-config --pool URL...
//! --director A --director B --vrrp-interface IF --for A` prints director A's complete
//! keepalived config. One `vrrp_instance` holds every VIP of the pool and moves them
//! together; the IPVS connection table follows through `lvs_sync_daemon`, so transfers
//! that were running on the master keep their real server on the backup. `--sysctl` prints
//! the same director's `sysctl.d` file.
//!
//! Every director gets the same instance with a distinct priority (the first `--director`
//! the highest) and `nopreempt`: once a backup has taken over, a returning director does
//! not take the VIPs back, which would switch every running transfer a second time.
//!
//! [`single_sysctl`] is the `sysctl.d` file of a site with one director: the IPVS keys
//! without the ones only a failover needs.

use std::fmt::Write;
use std::net::IpAddr;

/// The VRRP group as the admin gave it.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Every director of the group, in priority order.
    pub directors: Vec<IpAddr>,
    /// The director whose config is printed.
    pub me: IpAddr,
    /// The director's interface on the VIPs' network (VRRP adverts and the sync daemon).
    pub interface: String,
    pub vrid: u8,
}

/// The default `virtual_router_id` (`--vrid`); pick another if the LAN already has a VRRP
/// router with it.
pub const DEFAULT_VRID: u8 = 51;

/// The highest priority, given to the first `--director`; each next one gets 10 less.
const TOP_PRIORITY: u32 = 150;

/// The VRRP instance's name, used by `lvs_sync_daemon`.
pub const INSTANCE: &str = "VI_LVS";

impl Pair {
    /// Checks the group: at least two distinct directors of one family, `me` among them,
    /// an interface name the kernel could have. Errors name the flag and the fix.
    pub fn new(
        directors: &[IpAddr],
        me: Option<IpAddr>,
        interface: Option<&str>,
        vrid: u8,
    ) -> Result<Pair, String> {
        let mut ds: Vec<IpAddr> = Vec::new();
        for d in directors {
            if ds.contains(d) {
                return Err(format!(
                    "--director {d} is given twice: list each director once"
                ));
            }
            if d.is_unspecified() || d.is_multicast() || d.is_loopback() {
                return Err(format!(
                    "--director {d}: not a director's own address; give the address each director has on the VIPs' network"
                ));
            }
            ds.push(*d);
        }
        if ds.iter().any(|d| d.is_ipv4() != ds[0].is_ipv4()) {
            return Err("--director: the directors must all be IPv4 or all IPv6 (VRRP peers speak one family)".into());
        }
        if ds.len() > 8 {
            return Err(format!(
                "--director is given {} times: a VRRP group here has at most 8 directors",
                ds.len()
            ));
        }
        let me = me.ok_or("--for is missing: name the director whose config to print (one of the --director addresses)")?;
        if !ds.contains(&me) {
            return Err(format!(
                "--for {me} is not one of the --director addresses ({}): print the config of a director of the group",
                list(&ds)
            ));
        }
        let interface = interface.ok_or(
            "--vrrp-interface is missing: the directors' interface on the VIPs' network, e.g. eth0",
        )?;
        let ok = !interface.is_empty()
            && interface.len() < 16
            && interface
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
        if !ok {
            return Err(format!(
                "--vrrp-interface {interface:?} is not an interface name (up to 15 letters, digits, '.', '_', '-', '@')"
            ));
        }
        if vrid == 0 {
            return Err("--vrid 0: VRRP router ids are 1-255".into());
        }
        Ok(Pair {
            directors: ds,
            me,
            interface: interface.to_string(),
            vrid,
        })
    }

    fn priority(&self, d: IpAddr) -> u32 {
        let i = self.directors.iter().position(|x| *x == d).unwrap_or(0) as u32;
        TOP_PRIORITY - 10 * i
    }

    /// `global_defs` and the `vrrp_instance` of this director, to go before the
    /// `virtual_server`s. `vips` are every VIP the pool serves.
    pub fn keepalived(&self, vips: &[IpAddr]) -> String {
        let mut o = String::new();
        let others: Vec<IpAddr> = self
            .directors
            .iter()
            .copied()
            .filter(|d| *d != self.me)
            .collect();
        let _ = writeln!(
            o,
            "# Director {} of the VRRP group {} (virtual_router_id {}).",
            self.me,
            list(&self.directors),
            self.vrid
        );
        let _ = writeln!(
            o,
            "# The same command with --for <each director> prints the other members' configs.\n"
        );
        let _ = writeln!(o, "global_defs {{");
        let _ = writeln!(o, "    router_id lvs_director_{}", id_of(self.me));
        // The IPVS connection table follows the VIPs: the master sends it, the backups
        // receive it, keepalived switches the roles with the instance's state.
        let _ = writeln!(
            o,
            "    lvs_sync_daemon {} {INSTANCE} id {}",
            self.interface, self.vrid
        );
        let _ = writeln!(o, "}}\n");
        let _ = writeln!(o, "vrrp_instance {INSTANCE} {{");
        // All BACKUP with nopreempt: the highest priority becomes master at a cold start,
        // and a returning director does not take the VIPs back.
        let _ = writeln!(o, "    state BACKUP");
        let _ = writeln!(o, "    nopreempt");
        let _ = writeln!(o, "    interface {}", self.interface);
        let _ = writeln!(o, "    virtual_router_id {}", self.vrid);
        let _ = writeln!(o, "    priority {}", self.priority(self.me));
        let _ = writeln!(o, "    advert_int 1");
        let _ = writeln!(o, "    unicast_src_ip {}", self.me);
        let _ = writeln!(o, "    unicast_peer {{");
        for p in &others {
            let _ = writeln!(o, "        {p}");
        }
        let _ = writeln!(o, "    }}");
        let (same, other): (Vec<IpAddr>, Vec<IpAddr>) = dedup(vips)
            .into_iter()
            .partition(|v| v.is_ipv4() == self.me.is_ipv4());
        let addr = |v: &IpAddr| {
            let len = if v.is_ipv4() { 32 } else { 128 };
            format!("{v}/{len} dev {}", self.interface)
        };
        let _ = writeln!(o, "    virtual_ipaddress {{");
        for v in &same {
            let _ = writeln!(o, "        {}", addr(v));
        }
        let _ = writeln!(o, "    }}");
        if !other.is_empty() {
            // One instance moves both families; VRRP adverts carry one of them only.
            let _ = writeln!(o, "    virtual_ipaddress_excluded {{");
            for v in &other {
                let _ = writeln!(o, "        {}", addr(v));
            }
            let _ = writeln!(o, "    }}");
        }
        let _ = writeln!(o, "}}\n");
        o
    }

    /// This director's `sysctl.d` file.
    pub fn sysctl(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# /etc/sysctl.d/90-lvs-director.conf for director {} of the VRRP group {}",
            self.me,
            list(&self.directors)
        );
        o.push_str(SYSCTL_IPVS);
        o.push_str(SYSCTL_PAIR);
        o
    }
}

/// The `sysctl.d` file of a lone director (`director-config --sysctl` without a group).
pub fn single_sysctl() -> String {
    let mut o = String::from("# /etc/sysctl.d/90-lvs-director.conf for a single director\n");
    o.push_str(SYSCTL_IPVS);
    o
}

/// What every DR director needs, each with why.
const SYSCTL_IPVS: &str = "\
# printed by `lvs-node director-config --sysctl`; the net.ipv4.vs keys exist once the ip_vs
# module is loaded (put `ip_vs` in /etc/modules-load.d/ip_vs.conf).

# A drained node has weight 0. Without this, a client that still holds a persistence
# template (persistence_timeout, the GridFTP firewall-mark service) keeps being sent to
# it, so a drain of a node that FTS keeps using never ends.
net.ipv4.vs.expire_quiescent_template = 1

# Connections to a real server that left the table (its checker failed) are dropped at
# once, so their clients reconnect through the director to a live node instead of
# retransmitting into a dead one until they time out.
net.ipv4.vs.expire_nodest_conn = 1
";

/// What a director of a VRRP group needs on top of [`SYSCTL_IPVS`].
const SYSCTL_PAIR: &str = "
# After a failover the backup sees packets of connections it only knows from the sync
# daemon, or not at all; sloppy TCP lets IPVS take a connection over mid-stream instead of
# waiting for a SYN.
net.ipv4.vs.sloppy_tcp = 1

# The VIPs come and go with VRRP; keepalived and anything that binds them must be able
# to bind an address this director does not hold yet.
net.ipv4.ip_nonlocal_bind = 1
net.ipv6.ip_nonlocal_bind = 1
";

fn dedup(v: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in v {
        if !out.contains(a) {
            out.push(*a);
        }
    }
    out
}

fn list(v: &[IpAddr]) -> String {
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A router id made of the address's characters that keepalived's parser takes in a word.
fn id_of(a: IpAddr) -> String {
    a.to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn distinct_priorities_and_the_peers_of_each_member() {
        let ds = [ip("192.0.2.2"), ip("192.0.2.3")];
        let a = Pair::new(&ds, Some(ds[0]), Some("eth0"), DEFAULT_VRID).unwrap();
        let b = Pair::new(&ds, Some(ds[1]), Some("eth0"), DEFAULT_VRID).unwrap();
        let vips = [ip("192.0.2.100"), ip("2001:db8::100"), ip("192.0.2.100")];
        let ka = a.keepalived(&vips);
        let kb = b.keepalived(&vips);
        assert!(ka.contains("priority 150") && kb.contains("priority 140"));
        assert!(ka.contains("unicast_src_ip 192.0.2.2") && ka.contains("        192.0.2.3\n"));
        assert!(kb.contains("unicast_src_ip 192.0.2.3") && kb.contains("        192.0.2.2\n"));
        assert_eq!(ka.matches("192.0.2.100/32 dev eth0").count(), 1);
        assert!(ka.contains("virtual_ipaddress_excluded {\n        2001:db8::100/128 dev eth0"));
        assert!(ka.contains("lvs_sync_daemon eth0 VI_LVS id 51"));
    }

    #[test]
    fn every_director_gets_expire_quiescent_template_only_a_pair_the_failover_keys() {
        let ds = [ip("192.0.2.2"), ip("192.0.2.3")];
        let pair = Pair::new(&ds, Some(ds[0]), Some("eth0"), DEFAULT_VRID)
            .unwrap()
            .sysctl();
        let one = single_sysctl();
        for s in [&pair, &one] {
            assert!(
                s.contains("\nnet.ipv4.vs.expire_quiescent_template = 1\n"),
                "{s}"
            );
            assert!(s.contains("\nnet.ipv4.vs.expire_nodest_conn = 1\n"), "{s}");
        }
        assert!(pair.contains("\nnet.ipv4.vs.sloppy_tcp = 1\n"), "{pair}");
        assert!(
            !one.contains("sloppy_tcp") && !one.contains("nonlocal_bind"),
            "{one}"
        );
    }

    #[test]
    fn bad_groups_name_the_flag() {
        let ds = [ip("192.0.2.2"), ip("192.0.2.3")];
        let e = Pair::new(&ds, Some(ip("192.0.2.9")), Some("eth0"), 51).unwrap_err();
        assert!(e.starts_with("--for 192.0.2.9"), "{e}");
        let e = Pair::new(&ds, None, Some("eth0"), 51).unwrap_err();
        assert!(e.starts_with("--for is missing"), "{e}");
        let e = Pair::new(&ds, Some(ds[0]), Some("eth0\n}"), 51).unwrap_err();
        assert!(e.starts_with("--vrrp-interface"), "{e}");
        let e = Pair::new(&[ds[0], ip("2001:db8::2")], Some(ds[0]), Some("eth0"), 51).unwrap_err();
        assert!(e.contains("IPv4 or all IPv6"), "{e}");
        let e = Pair::new(&[ds[0], ds[0]], Some(ds[0]), Some("eth0"), 51).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }
}
