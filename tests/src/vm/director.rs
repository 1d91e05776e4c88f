//! A real LVS director: a script guest holding the director IP and the VIP on its eth0,
//! with the IPVS modules loaded, running the host's keepalived (IPVS in DR mode) on any
//! config text a test hands it. The IPVS table is read with the real `ipvsadm`.

use super::{Vm, VmOpts};
use anyhow::{bail, Result};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One realserver line of `ipvsadm -Ln` (or /proc/net/ip_vs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Real {
    /// `IP:port`.
    pub addr: String,
    /// `Route` for DR.
    pub forward: String,
    pub weight: u32,
    pub active: u64,
    pub inactive: u64,
}

/// One virtual service and its realservers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `TCP 192.0.2.100:2811` (protocol, address:port), or `FWM 1`.
    pub key: String,
    pub scheduler: String,
    pub reals: Vec<Real>,
}

/// Per-realserver counters from `ipvsadm -Ln --stats --exact`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealStats {
    pub addr: String,
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

fn hex_addr(s: &str) -> String {
    // /proc/net/ip_vs writes IPv4 services as C0000264:0AFB.
    if let Some((a, p)) = s.split_once(':') {
        if a.len() == 8 && p.len() == 4 {
            if let (Ok(a), Ok(p)) = (u32::from_str_radix(a, 16), u16::from_str_radix(p, 16)) {
                return format!("{}:{p}", Ipv4Addr::from(a));
            }
        }
    }
    s.to_string()
}

/// A firewall mark in decimal: /proc/net/ip_vs writes it as 8 hex digits (`00000AFB`),
/// `ipvsadm -Ln` in decimal (`2811`).
fn fwmark(s: &str) -> String {
    match u32::from_str_radix(s, 16) {
        Ok(m) if s.len() == 8 => m.to_string(),
        _ => s.to_string(),
    }
}

/// Parses `ipvsadm -Ln` or /proc/net/ip_vs (hex addresses) into services.
pub fn parse_table(text: &str) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.is_empty() {
            continue;
        }
        match w[0] {
            "TCP" | "UDP" | "SCTP" | "FWM" if w.len() >= 3 => out.push(Service {
                key: format!(
                    "{} {}",
                    w[0],
                    if w[0] == "FWM" {
                        fwmark(w[1])
                    } else {
                        hex_addr(w[1])
                    }
                ),
                scheduler: w[2].to_string(),
                reals: Vec::new(),
            }),
            "->" if w.len() >= 6 && w[1] != "RemoteAddress:Port" => {
                if let Some(s) = out.last_mut() {
                    s.reals.push(Real {
                        addr: hex_addr(w[1]),
                        forward: w[2].to_string(),
                        weight: w[3].parse().unwrap_or(0),
                        active: w[4].parse().unwrap_or(0),
                        inactive: w[5].parse().unwrap_or(0),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Parses `ipvsadm -Ln --stats --exact`: the realserver lines of every service.
pub fn parse_stats(text: &str) -> Vec<RealStats> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 7 || w[0] != "->" {
                return None;
            }
            let n = |i: usize| w[i].parse::<u64>().ok();
            Some(RealStats {
                addr: w[1].to_string(),
                conns: n(2)?,
                in_pkts: n(3)?,
                out_pkts: n(4)?,
                in_bytes: n(5)?,
                out_bytes: n(6)?,
            })
        })
        .collect()
}

/// The guest side of the director.
pub struct IpvsDirector {
    pub vm: Vm,
    pub ip: Ipv4Addr,
    pub vip: Ipv4Addr,
    pub mac: String,
    /// Time from qemu's start to the director being ready.
    pub boot_time: Duration,
}

/// Where keepalived's config lives, as the guest sees it.
const GUEST_CONF: &str = "/lab/keepalived.conf";

impl IpvsDirector {
    /// Boots the director guest on `bridge` in namespace `netns` (host-side files in
    /// `workdir`, default a unique temp dir): `ip`/24 and `vip`/32 on
    /// its eth0, IPVS loaded, `ipvsadm` answering. Bounded by [`super::READY_TIMEOUT`].
    pub fn boot(
        workdir: Option<PathBuf>,
        netns: &str,
        bridge: &str,
        ip: Ipv4Addr,
        vip: Ipv4Addr,
        mac: &str,
        ipv6: Option<(&str, &str)>,
    ) -> Result<IpvsDirector> {
        IpvsDirector::boot_as("dir", workdir, netns, bridge, ip, vip, true, mac, ipv6)
    }

    /// A member of a VRRP pair: like [`IpvsDirector::boot`], but the VIP is left to
    /// keepalived's `vrrp_instance` (only the master holds it). `tag` names the guest's tap
    /// (`vt{tag}`), so each member of the pair needs its own.
    pub fn boot_pair_member(
        tag: &str,
        netns: &str,
        bridge: &str,
        ip: Ipv4Addr,
        vip: Ipv4Addr,
        mac: &str,
    ) -> Result<IpvsDirector> {
        IpvsDirector::boot_as(tag, None, netns, bridge, ip, vip, false, mac, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn boot_as(
        tag: &str,
        workdir: Option<PathBuf>,
        netns: &str,
        bridge: &str,
        ip: Ipv4Addr,
        vip: Ipv4Addr,
        hold_vip: bool,
        mac: &str,
        ipv6: Option<(&str, &str)>,
    ) -> Result<IpvsDirector> {
        let mut opts = VmOpts::new(tag).on_bridge(netns, bridge);
        opts.mac = mac.to_string();
        opts.workdir = workdir;
        let vip_line = if hold_vip {
            format!("ip addr add {vip}/32 dev eth0\n")
        } else {
            String::new()
        };
        let setup = format!(
            "set -e\n\
             ip link set eth0 up\n\
             ip addr add {ip}/24 dev eth0\n\
             {vip_line}\
             {v6}\
             ipvsadm -Ln\n",
            v6 = match ipv6 {
                // No DAD: the guest's addresses are usable at once. The VIP is deprecated
                // (preferred_lft 0) so that it is never the source of the director's own
                // traffic: otherwise its longer prefix wins source selection for the
                // checkers' connections, and the nodes, which hold the VIP, drop them.
                Some((ip6, vip6)) => format!(
                    "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.eth0.accept_dad=0\n\
                     ip -6 addr add {ip6}/64 dev eth0 nodad\n\
                     ip -6 addr add {vip6}/128 dev eth0 nodad preferred_lft 0\n"
                ),
                None => "sysctl -qw net.ipv6.conf.all.disable_ipv6=1\n".into(),
            }
        );
        let vm = Vm::boot_script(&opts, &setup)?;
        let boot_time = vm.uptime();
        Ok(IpvsDirector {
            vm,
            ip,
            vip,
            mac: mac.to_string(),
            boot_time,
        })
    }

    /// `keepalived -t` on `conf` in the guest: Ok, or the checker's complaints. (Not part of
    /// [`IpvsDirector::load_keepalived`]: a full parse costs seconds of emulated CPU.)
    pub fn check_keepalived(&self, conf: &str) -> Result<()> {
        let io = self.vm.io_dir();
        std::fs::write(io.join("keepalived-check.conf"), conf)?;
        let r = self.vm.run_timeout(
            "keepalived -t -f /lab/keepalived-check.conf",
            Duration::from_secs(90),
        )?;
        if r.rc != 0 {
            bail!("keepalived -t rejected the config:\n{conf}\n{}", r.out);
        }
        Ok(())
    }

    /// Writes `conf` as keepalived's config and starts keepalived (IPVS checkers, no VRRP
    /// needed), or makes the running one reload it (SIGHUP). Any config text works: a test
    /// hands in `lvs-node director-config` output as it is or wrapped. A config keepalived
    /// cannot use shows in [`IpvsDirector::keepalived_log`] and in the IPVS table.
    pub fn load_keepalived(&self, conf: &str) -> Result<()> {
        let io = self.vm.io_dir();
        let tmp = io.join("keepalived.conf.tmp");
        std::fs::write(&tmp, conf)?;
        std::fs::rename(&tmp, io.join("keepalived.conf"))?;
        let r = self.vm.run(&format!(
            "if [ -s /run/lab-keepalived.pid ] && kill -0 $(cat /run/lab-keepalived.pid) 2>/dev/null; then \
               kill -HUP $(cat /run/lab-keepalived.pid); echo reloaded; \
             else \
               keepalived -f {GUEST_CONF} -n -l -D -p /run/lab-ka.pid -c /run/lab-ka-check.pid \
                 -r /run/lab-ka-vrrp.pid >>/lab/keepalived.log 2>&1 & \
               echo $! >/run/lab-keepalived.pid; echo started; \
             fi"
        ))?;
        if r.rc != 0 {
            bail!("starting keepalived in the guest: {}", r.out);
        }
        Ok(())
    }

    /// Stops keepalived and waits (up to 10 s) until it has exited, so that the next
    /// [`IpvsDirector::load_keepalived`] starts a fresh one instead of racing the old one's
    /// pid files; then clears the IPVS table.
    pub fn stop_keepalived(&self) -> Result<()> {
        let r = self.vm.run(
            "if [ -s /run/lab-keepalived.pid ]; then p=$(cat /run/lab-keepalived.pid); kill $p; \
               i=0; while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
               kill -0 $p 2>/dev/null && { echo still running; exit 1; }; fi; \
             rm -f /run/lab-keepalived.pid /run/lab-ka.pid /run/lab-ka-check.pid /run/lab-ka-vrrp.pid; \
             ipvsadm -C",
        )?;
        if r.rc != 0 {
            bail!("stopping keepalived in the guest: {}", r.out);
        }
        Ok(())
    }

    /// The config file keepalived reads, as the guest reads it: for checks that what was
    /// loaded is, byte for byte, what a command printed.
    pub fn loaded_keepalived_conf(&self) -> String {
        self.vm.ok(&format!("cat {GUEST_CONF}"))
    }

    /// keepalived's log (the guest writes it to /lab/keepalived.log).
    pub fn keepalived_log(&self) -> String {
        std::fs::read_to_string(self.vm.io_dir().join("keepalived.log")).unwrap_or_default()
    }

    pub fn keepalived_log_path(&self) -> PathBuf {
        self.vm.io_dir().join("keepalived.log")
    }

    /// `ipvsadm -Ln` in the guest, as text.
    pub fn ipvsadm_ln(&self) -> String {
        self.vm.ok("ipvsadm -Ln")
    }

    /// `ipvsadm -Ln --stats --exact` in the guest, as text.
    pub fn ipvsadm_stats(&self) -> String {
        self.vm.ok("ipvsadm -Ln --stats --exact")
    }

    pub fn table(&self) -> Vec<Service> {
        parse_table(&self.ipvsadm_ln())
    }

    pub fn stats(&self) -> Vec<RealStats> {
        parse_stats(&self.ipvsadm_stats())
    }

    /// The realserver `addr` (`IP:port`) of any service in `ipvsadm -Ln`, if present.
    pub fn real(&self, addr: &str) -> Option<Real> {
        self.table()
            .into_iter()
            .flat_map(|s| s.reals)
            .find(|r| r.addr == addr)
    }

    /// Polls `ipvsadm -Ln` until `pred` holds for realserver `addr` (None: absent);
    /// returns the last table text on timeout, for the failure message.
    pub fn wait_real(
        &self,
        addr: &str,
        timeout: Duration,
        pred: impl Fn(Option<&Real>) -> bool,
    ) -> std::result::Result<Option<Real>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.ipvsadm_ln();
            let r = parse_table(&text)
                .into_iter()
                .flat_map(|s| s.reals)
                .find(|r| r.addr == addr);
            if pred(r.as_ref()) {
                return Ok(r);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ipvsadm -Ln after {} s:\n{text}\nkeepalived log tail:\n{}",
                    timeout.as_secs(),
                    tail(&self.keepalived_log(), 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts `lvs-lab-ipvs-watch` in the guest: it reads /proc/net/ip_vs every
    /// `interval_ms` and copies it to /lab/ipvs.now when it changes, so the host can time
    /// table changes without a command round trip and without loading the guest's one vCPU.
    pub fn start_table_watch(&self, interval_ms: u32) -> Result<()> {
        let watch = crate::bins::bin("lvs-lab-ipvs-watch");
        let r = self.vm.run(&format!(
            "{} {interval_ms} /lab/ipvs.now >/dev/null 2>&1 </dev/null & echo $! >/run/lab-watch.pid",
            watch.display()
        ))?;
        if r.rc != 0 {
            bail!("starting the table watch: {}", r.out);
        }
        Ok(())
    }

    /// The latest copy written by [`IpvsDirector::start_table_watch`].
    pub fn watched_table(&self) -> Vec<Service> {
        parse_table(&std::fs::read_to_string(self.vm.io_dir().join("ipvs.now")).unwrap_or_default())
    }
}

/// A complete keepalived config: one DR `virtual_server` for `vip`:`port` around `body`
/// (the `real_server` stanzas, e.g. `lvs-node director-config` output as it is).
pub fn keepalived_conf(
    vip: Ipv4Addr,
    port: u16,
    lb_algo: &str,
    delay_loop: u32,
    body: &str,
) -> String {
    format!(
        "global_defs {{\n    router_id lvslab\n    enable_script_security\n    script_user root\n}}\n\
         virtual_server {vip} {port} {{\n    delay_loop {delay_loop}\n    lb_algo {lb_algo}\n    \
         lb_kind DR\n    protocol TCP\n{body}}}\n"
    )
}

/// Points a MISC_CHECK `misc_path` at the `lvs-node` under test instead of the packaged one.
pub fn with_probe_path(conf: &str, lvs_node: &std::path::Path) -> String {
    let p = lvs_node.display().to_string();
    conf.replace("\"/usr/sbin/lvs-node ", &format!("\"{p} "))
        .replace("\"/usr/bin/lvs-node ", &format!("\"{p} "))
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipvsadm_and_proc() {
        let t = "IP Virtual Server version 1.2.1 (size=4096)\n\
                 Prot LocalAddress:Port Scheduler Flags\n\
                 \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                 TCP  192.0.2.100:2811 wlc\n\
                 \x20 -> 192.0.2.11:2811              Route   100    1          2\n\
                 \x20 -> 192.0.2.12:2811              Route   0      0          0\n";
        let s = parse_table(t);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].key, "TCP 192.0.2.100:2811");
        assert_eq!(s[0].reals[0].weight, 100);
        assert_eq!(s[0].reals[0].active, 1);
        assert_eq!(s[0].reals[1].weight, 0);
        let p = "TCP  C0000264:0AFB wlc\n  -> C000020B:0AFB      Route   7    0          0\n";
        let s = parse_table(p);
        assert_eq!(s[0].key, "TCP 192.0.2.100:2811");
        assert_eq!(s[0].reals[0].addr, "192.0.2.11:2811");
        assert_eq!(s[0].reals[0].weight, 7);
        let f = "FWM  00000AFB wlc persistent 300\n  -> C000020B:0000      Route   100    0          0\n";
        let s = parse_table(f);
        assert_eq!(s[0].key, "FWM 2811");
        assert_eq!(s[0].reals[0].addr, "192.0.2.11:0");
        let s = parse_table(
            "FWM  2811 wlc persistent 300\n  -> 192.0.2.11:0   Route   100    0    0\n",
        );
        assert_eq!(s[0].key, "FWM 2811");
        let st = "TCP  192.0.2.100:2811     3    30    0   2000   0\n  -> 192.0.2.11:2811  2  20  0  1500  0\n";
        let r = parse_stats(st);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].conns, 2);
        assert_eq!(r[0].in_bytes, 1500);
    }
}
