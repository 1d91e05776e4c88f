//! The LVS-DR lab: a bridge segment with a client, a director holding the VIP on its NIC,
//! and real servers. Two directors:
//!
//! - [`IpvsLab`]: the real one. A qemu guest (see `vm.rs`) whose Debian kernel has IPVS,
//!   running the real keepalived with `lb_kind DR`, joined to the bridge by a tap. Tests
//!   about the director's view (checkers, weights, the IPVS table) use it.
//! - [`DrLab`]: an EMULATION of the director, for tests where IPVS adds nothing. The host
//!   kernel has no IPVS, so a namespace emulates the DR forwarding with nftables on the
//!   netdev ingress hook: rewrite the destination MAC to a real server chosen per connection
//!   on the SYN, and send the frame back out of the same NIC. No checker runs there.

use crate::netns::{unique_prefix, Netns};
use std::net::Ipv4Addr;

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const VIP6: &str = "2001:db8::100";
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

pub struct Host {
    pub ns: Netns,
    pub ip: Ipv4Addr,
    pub ip6: String,
    pub mac: String,
}

impl Host {
    pub fn ok(&self, cmd: &str) -> String {
        self.ns.ok(cmd)
    }
}

/// Options for building the lab.
#[derive(Clone)]
pub struct LabOpts {
    pub reals: usize,
    pub ipv6: bool,
    /// TCP ports the director balances.
    pub ports: Vec<u16>,
}

impl Default for LabOpts {
    fn default() -> Self {
        LabOpts {
            reals: 2,
            ipv6: false,
            ports: vec![2811],
        }
    }
}

/// A lab whose director is the nftables EMULATION (see the module comment).
pub struct DrLab {
    pub prefix: String,
    pub client: Host,
    /// The emulated director: a namespace with the VIP on its NIC and the nftables
    /// MAC-rewrite rules (not IPVS).
    pub director: Host,
    pub reals: Vec<Host>,
    pub ports: Vec<u16>,
    // Dropped last: every host's veth dies with its namespace, then the bridge.
    pub bridge: Netns,
}

pub fn real_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 11 + i as u8)
}

fn mac(n: usize) -> String {
    format!("02:00:00:00:00:{:02x}", n)
}

/// Adds namespace `{prefix}{role}` to the segment: veth `eth0` (MAC from `n`) whose peer
/// `p{port}` joins `br0` in the bridge namespace, address `ip`/24.
fn add_host(
    bridge: &Netns,
    prefix: &str,
    role: &str,
    ip: Ipv4Addr,
    n: usize,
    port: usize,
    ipv6: bool,
) -> Host {
    let ns = Netns::new(&format!("{prefix}{role}"));
    if !ipv6 {
        ns.disable_ipv6();
    } else {
        // DAD only slows the lab down; the IPv6 test checks our own nodad flag.
        ns.ok("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
    }
    let m = mac(n);
    let out = crate::netns::host(&format!(
        "ip link add name eth0 netns {ns} address {m} type veth peer name p{port} netns {br}",
        ns = ns.name,
        br = bridge.name
    ));
    assert!(
        out.status.success(),
        "veth: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bridge.ok(&format!("ip link set p{port} master br0 up"));
    ns.ok(&format!(
        "ip addr add {ip}/24 dev eth0 && ip link set eth0 up"
    ));
    let ip6 = format!("2001:db8::{}", n);
    if ipv6 {
        ns.ok(&format!("ip -6 addr add {ip6}/64 dev eth0 nodad"));
    }
    Host {
        ns,
        ip,
        ip6,
        mac: m,
    }
}

impl DrLab {
    pub fn build(tag: &str, opts: LabOpts) -> DrLab {
        DrLab::build_with_prefix(&unique_prefix(tag), opts)
    }

    /// The lab most daemon tests use: the client, the director and one real server.
    pub fn one_real(tag: &str) -> DrLab {
        DrLab::build(
            tag,
            LabOpts {
                reals: 1,
                ..LabOpts::default()
            },
        )
    }

    /// Like `build`, with namespace names `{prefix}br`, `{prefix}cl`, `{prefix}dir`,
    /// `{prefix}rs1`, ... chosen by the caller (the demo prints and tears down by prefix).
    pub fn build_with_prefix(prefix: &str, opts: LabOpts) -> DrLab {
        crate::netns::require_root();
        let prefix = prefix.to_string();
        let bridge = Netns::new(&format!("{prefix}br"));
        bridge.ok("ip link add br0 type bridge && ip link set br0 up");
        let mut port = 0usize;
        let mut mk = |role: &str, ip: Ipv4Addr, n: usize| -> Host {
            port += 1;
            add_host(&bridge, &prefix, role, ip, n, port, opts.ipv6)
        };
        let client = mk("cl", CLIENT_IP, 1);
        let director = mk("dir", DIRECTOR_IP, 2);
        let reals: Vec<Host> = (0..opts.reals)
            .map(|i| mk(&format!("rs{}", i + 1), real_ip(i), 11 + i))
            .collect();
        director.ok(&format!("ip addr add {VIP}/32 dev eth0"));
        if opts.ipv6 {
            director.ok(&format!("ip -6 addr add {VIP6}/128 dev eth0 nodad"));
        }
        let lab = DrLab {
            prefix,
            client,
            director,
            reals,
            ports: opts.ports.clone(),
            bridge,
        };
        let all: Vec<usize> = (0..lab.reals.len()).collect();
        lab.set_backends(&all);
        lab
    }

    /// (Re)writes the emulated director's nftables forwarding rules so new connections are spread
    /// round-robin over `backends` (indexes into `reals`). One nft transaction.
    ///
    /// A connection stays on the real server chosen for its SYN: the connection map holds
    /// the real server (not its position in `backends`) and survives the update, so taking
    /// a node out of rotation never moves or resets the connections it already serves
    /// (like IPVS with weight 0). Entries expire 10 minutes after the SYN.
    pub fn set_backends(&self, backends: &[usize]) {
        let ports: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
        let ports = ports.join(", ");
        let svc = format!("ip daddr {VIP} tcp dport {{ {ports} }}");
        let mut rules = String::new();
        if !backends.is_empty() {
            let pick: Vec<String> = backends
                .iter()
                .enumerate()
                .map(|(k, &i)| format!("{k} : {}", i + 1))
                .collect();
            rules.push_str(&format!(
                "{svc} tcp flags syn / syn,ack meta mark set numgen inc mod {n} map {{ {pick} }} update @conn {{ ip saddr . tcp sport : meta mark }}\n",
                n = backends.len(),
                pick = pick.join(", "),
            ));
        }
        let macs: Vec<String> = self
            .reals
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{} : {}", i + 1, h.mac))
            .collect();
        rules.push_str(&format!(
            "{svc} meta mark set ip saddr . tcp sport map @conn ether saddr set {dmac} ether daddr set meta mark map {{ {macs} }} fwd to \"eth0\"\n",
            dmac = self.director.mac,
            macs = macs.join(", "),
        ));
        let script = format!(
            "table netdev lvsdr {{\n\
             map conn {{ type ipv4_addr . inet_service : mark; flags dynamic,timeout; timeout 10m; }}\n\
             chain in {{ type filter hook ingress device \"eth0\" priority 0; policy accept; }}\n}}\n\
             flush chain netdev lvsdr in\n\
             table netdev lvsdr {{\nchain in {{\n{rules}}}\n}}\n"
        );
        let path = std::env::temp_dir().join(format!("{}-dir.nft", self.prefix));
        std::fs::write(&path, script).unwrap();
        self.director.ok(&format!("nft -f {}", path.display()));
        let _ = std::fs::remove_file(path);
    }

    /// MACs that answer ARP for `ip` as seen by the client with real arping.
    pub fn arp_answers(&self, ip: &str) -> Vec<String> {
        arp_answers(&self.client, ip)
    }
}

/// A lab whose director is REAL: a qemu guest with IPVS and keepalived (`vm.rs`). The guest
/// holds `DIRECTOR_IP` and the VIP on its eth0; the client and the real servers are
/// namespaces on the same bridge, as in [`DrLab`]. The real servers get no VIP here: a test
/// runs `lvs-node` on them (or sets them up itself).
pub struct IpvsLab {
    pub prefix: String,
    pub client: Host,
    pub reals: Vec<Host>,
    /// Dropped first: qemu is killed by PID and its files removed.
    pub director: crate::vm::director::IpvsDirector,
    /// The second director of a VRRP pair ([`IpvsLab::build_pair`]), at `DIRECTOR2_IP`;
    /// `None` in a one-director lab. Dropped like `director`.
    /// Boxed: a one-director lab does not carry a second guest's worth of fields.
    pub director2: Option<Box<crate::vm::director::IpvsDirector>>,
    // Dropped last: every host's veth dies with its namespace, then the bridge.
    pub bridge: Netns,
}

/// The guest director's MAC.
pub const DIRECTOR_MAC: &str = "02:00:00:00:00:02";
/// The second director of a pair ([`IpvsLab::build_pair`]): its address and MAC.
pub const DIRECTOR2_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
pub const DIRECTOR2_MAC: &str = "02:00:00:00:00:03";

impl IpvsLab {
    /// Builds the namespaces and boots the director guest (at most 20 s, or an error that
    /// says so with the guest's console). IPv4 only. The guest's files are in
    /// `$TMPDIR/{prefix}-vm` (console.log, qemu.log, io/).
    pub fn build(tag: &str, reals: usize) -> anyhow::Result<IpvsLab> {
        IpvsLab::build_with_prefix(&unique_prefix(tag), reals)
    }

    pub fn build_with_prefix(prefix: &str, reals: usize) -> anyhow::Result<IpvsLab> {
        IpvsLab::build_opts(prefix, reals, false)
    }

    /// Dual-stack: the guest also holds `2001:db8::2/64` and `VIP6` on its eth0, and every
    /// host has its `ip6` (`2001:db8::N/64`).
    pub fn build_dual_stack(tag: &str, reals: usize) -> anyhow::Result<IpvsLab> {
        IpvsLab::build_opts(&unique_prefix(tag), reals, true)
    }

    /// Two director guests on the segment, the members of a VRRP pair: `director` at
    /// `DIRECTOR_IP` (MAC `DIRECTOR_MAC`) and `director2` at `DIRECTOR2_IP` (MAC
    /// `DIRECTOR2_MAC`). Neither holds the VIP: the test's keepalived `vrrp_instance` puts
    /// it on the master. Each boot is bounded like [`IpvsLab::build`]'s. IPv4 only.
    pub fn build_pair(tag: &str, reals: usize) -> anyhow::Result<IpvsLab> {
        use crate::vm::director::IpvsDirector;
        let prefix = unique_prefix(tag);
        IpvsLab::assemble(&prefix, reals, false, |bridge| {
            let a = IpvsDirector::boot_pair_member(
                "dira",
                &bridge.name,
                "br0",
                DIRECTOR_IP,
                VIP,
                DIRECTOR_MAC,
            )?;
            let b = IpvsDirector::boot_pair_member(
                "dirb",
                &bridge.name,
                "br0",
                DIRECTOR2_IP,
                VIP,
                DIRECTOR2_MAC,
            )?;
            Ok((a, Some(Box::new(b))))
        })
    }

    fn build_opts(prefix: &str, reals: usize, ipv6: bool) -> anyhow::Result<IpvsLab> {
        IpvsLab::assemble(prefix, reals, ipv6, |bridge| {
            let d = crate::vm::director::IpvsDirector::boot(
                Some(std::env::temp_dir().join(format!("{prefix}-vm"))),
                &bridge.name,
                "br0",
                DIRECTOR_IP,
                VIP,
                DIRECTOR_MAC,
                ipv6.then_some(("2001:db8::2", VIP6)),
            )?;
            Ok((d, None))
        })
    }

    /// The bridge, the guest(s) `boot` starts on it, the client and the real servers.
    #[allow(clippy::type_complexity)]
    fn assemble(
        prefix: &str,
        reals: usize,
        ipv6: bool,
        boot: impl FnOnce(
            &Netns,
        ) -> anyhow::Result<(
            crate::vm::director::IpvsDirector,
            Option<Box<crate::vm::director::IpvsDirector>>,
        )>,
    ) -> anyhow::Result<IpvsLab> {
        crate::netns::require_root();
        let prefix = prefix.to_string();
        let bridge = Netns::new(&format!("{prefix}br"));
        bridge.ok("ip link add br0 type bridge && ip link set br0 up");
        // The guests are booted on this thread: qemu dies with the thread that started it.
        let (director, director2) = boot(&bridge)?;
        let client = add_host(&bridge, &prefix, "cl", CLIENT_IP, 1, 1, ipv6);
        let reals: Vec<Host> = (0..reals)
            .map(|i| {
                add_host(
                    &bridge,
                    &prefix,
                    &format!("rs{}", i + 1),
                    real_ip(i),
                    11 + i,
                    2 + i,
                    ipv6,
                )
            })
            .collect();
        Ok(IpvsLab {
            prefix,
            client,
            reals,
            director,
            director2,
            bridge,
        })
    }

    /// MACs that answer ARP for `ip` as seen by the client with real arping.
    pub fn arp_answers(&self, ip: &str) -> Vec<String> {
        arp_answers(&self.client, ip)
    }
}

fn arp_answers(client: &Host, ip: &str) -> Vec<String> {
    let out = client.ns.run(&format!("arping -c 2 -w 2 -I eth0 {ip}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut macs: Vec<String> = text
        .lines()
        .filter(|l| l.contains("reply from"))
        .filter_map(|l| {
            let a = l.find('[')?;
            let b = l.find(']')?;
            Some(l[a + 1..b].to_lowercase())
        })
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// The source MACs (lower case, sorted, once each) of every neighbour advertisement for
/// `vip6` that `client` saw on its eth0 while it solicited the VIP three times, its
/// neighbour cache flushed before each. The capture is written to `cap`.
pub fn na_sources(client: &Netns, cap: &std::path::Path, vip6: &str) -> Vec<String> {
    client.ok(&format!(
        "(timeout 5 tcpdump -i eth0 -e -n -l 'icmp6 and ip6[40] == 136' > {cap} 2>/dev/null &) ; sleep 1; \
         for i in 1 2 3; do ip -6 neigh flush dev eth0; ping -6 -c 1 -W 1 {vip6} >/dev/null 2>&1 || true; done; sleep 4.5",
        cap = cap.display()
    ));
    let text = std::fs::read_to_string(cap).unwrap_or_default();
    let mut macs: Vec<String> = text
        .lines()
        .filter(|l| l.contains(&format!("tgt is {vip6}")))
        .filter_map(|l| l.split_whitespace().nth(1).map(|m| m.to_lowercase()))
        .collect();
    macs.sort();
    macs.dedup();
    macs
}
