//! A model host for the unit and property tests of `plan` and `apply`: addresses, the ARP
//! sysctls, arptables rules (ours and an admin's), our nftables table and the state record,
//! changed by each `Op` the way the kernel and the tools change the real host. `up` and
//! `down` here run the real `plan::build` and `apply::execute_on`, so the tests cover the
//! ordering, the ownership record and the rollback without root or namespaces.

use super::apply::{self, Faults, Host};
use super::arp::{self, nftables};
use super::model::{Actual, ArpRule, Item, NftTable, Owned};
use super::netlink::{AddrInfo, LinkInfo};
use super::plan::{self, Op};
use super::ApplyError;
use lvs_shared::config::{ArpMethod, Vip};
use netlink_packet_route::address::AddressFlags;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

pub const LO: u32 = 1;
pub const ETH0: u32 = 2;

pub fn rip() -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 11)
}

pub fn vip(addr: &str, prefix: u8, device: &str) -> Vip {
    Vip {
        address: addr.parse().unwrap(),
        prefix,
        device: device.into(),
        ports: vec![2811],
        hostname: None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub address: IpAddr,
    pub prefix: u8,
    pub index: u32,
    pub flags: u32,
}

/// One host. `arp_rules`: `None` is an admin's rule of another form (kept in order).
#[derive(Debug, Clone, PartialEq)]
pub struct SimHost {
    pub addrs: Vec<Addr>,
    pub sysctls: BTreeMap<String, String>,
    pub arp_rules: Vec<Option<ArpRule>>,
    pub arp_filter_table: bool,
    pub nft: Option<NftTable>,
    /// state_dir/state.json.
    pub record: Owned,
}

pub fn sysctl_keys() -> Vec<String> {
    let mut v = Vec::new();
    for dev in ["all", "eth0"] {
        for k in ["arp_ignore", "arp_announce"] {
            v.push(format!("net/ipv4/conf/{dev}/{k}"));
        }
    }
    v
}

impl SimHost {
    /// A node with only its real IP, default sysctls and no rules.
    pub fn fresh() -> SimHost {
        SimHost {
            addrs: vec![
                Addr {
                    address: "127.0.0.1".parse().unwrap(),
                    prefix: 8,
                    index: LO,
                    flags: 0,
                },
                Addr {
                    address: IpAddr::V4(rip()),
                    prefix: 24,
                    index: ETH0,
                    flags: 0,
                },
            ],
            sysctls: sysctl_keys().into_iter().map(|k| (k, "0".into())).collect(),
            arp_rules: Vec::new(),
            arp_filter_table: false,
            nft: None,
            record: Owned::default(),
        }
    }

    pub fn index(dev: &str) -> u32 {
        match dev {
            "lo" => LO,
            "eth0" => ETH0,
            d => panic!("no device {d} in the model"),
        }
    }

    pub fn add_addr(&mut self, v: &Vip, flags: u32) {
        self.addrs.push(Addr {
            address: v.address,
            prefix: v.prefix,
            index: Self::index(&v.device),
            flags,
        });
    }

    pub fn has(&self, v: &Vip) -> bool {
        self.addrs.iter().any(|a| {
            a.address == v.address && a.prefix == v.prefix && a.index == Self::index(&v.device)
        })
    }

    /// What `observe` would read from this host.
    pub fn observe(&self) -> Actual {
        Actual {
            links: vec![
                LinkInfo {
                    index: LO,
                    name: "lo".into(),
                    up: true,
                },
                LinkInfo {
                    index: ETH0,
                    name: "eth0".into(),
                    up: true,
                },
            ],
            addrs: self
                .addrs
                .iter()
                .map(|a| AddrInfo {
                    address: a.address,
                    prefix: a.prefix,
                    index: a.index,
                    flags: AddressFlags::from_bits_retain(a.flags),
                })
                .collect(),
            sysctls: self.sysctls.clone(),
            arp_rules: Some(self.arp_rules.iter().flatten().cloned().collect()),
            arp_filter_table: Some(self.arp_filter_table),
            nft: self.nft.as_ref().map(|t| (t.clone(), nftables::render(t))),
        }
    }

    fn sysctl_max(&self, name: &str) -> u32 {
        ["all", "eth0"]
            .iter()
            .map(|d| {
                self.sysctls
                    .get(&format!("net/ipv4/conf/{d}/{name}"))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether the host never answers ARP for this IPv4 address and its own ARP never
    /// says "tell VIP". IPv6 has no ARP: always true.
    pub fn suppressed(&self, address: IpAddr, index: u32) -> bool {
        let IpAddr::V4(a) = address else {
            return true;
        };
        if self.nft.as_ref().is_some_and(|t| t.vips.contains(&a)) {
            return true;
        }
        let rules: Vec<&ArpRule> = self.arp_rules.iter().flatten().collect();
        if rules.contains(&&ArpRule::DropIn { vip: a })
            && rules
                .iter()
                .any(|r| matches!(r, ArpRule::MangleOut { vip, .. } if *vip == a))
        {
            return true;
        }
        // arp_ignore hides addresses of other interfaces only: a VIP on lo.
        index == LO
            && matches!(self.sysctl_max("arp_ignore"), 1 | 2 | 3 | 8)
            && self.sysctl_max("arp_announce") >= 2
    }

    /// Addresses of `pool` on the host that the host would answer ARP for.
    pub fn unsuppressed(&self, pool: &[IpAddr]) -> Vec<Addr> {
        self.addrs
            .iter()
            .filter(|a| pool.contains(&a.address) && !self.suppressed(a.address, a.index))
            .cloned()
            .collect()
    }
}

impl SimHost {
    /// The host with addresses and arptables rules in a canonical order. A rolled-back
    /// removal puts the address or rule back at the end of its list (`ip addr add`,
    /// `arptables -A`), not at its old position, so comparisons after the rollback of a
    /// removal use this.
    pub fn canonical(&self) -> SimHost {
        let mut h = self.clone();
        h.arp_rules.sort_by_key(|r| format!("{r:?}"));
        h.addrs.sort_by_key(|a| format!("{a:?}"));
        h
    }
}

fn vip_flags(v: &Vip) -> u32 {
    let mut f = AddressFlags::empty();
    if v.address.is_ipv6() {
        f |= AddressFlags::Nodad | AddressFlags::Deprecated;
    }
    if v.device != "lo" {
        f |= AddressFlags::Noprefixroute;
    }
    f.bits()
}

fn same_addr(a: &Addr, v: &Vip) -> bool {
    a.index == SimHost::index(&v.device)
        && a.address == v.address
        && (v.address.is_ipv6() || a.prefix == v.prefix)
}

impl Host for SimHost {
    async fn run(&mut self, op: &Op) -> Result<(), ApplyError> {
        match op {
            Op::DelVip(v, _) => self.addrs.retain(|a| !same_addr(a, v)),
            Op::RestoreVip { vip, flags } => {
                match self.addrs.iter_mut().find(|a| same_addr(a, vip)) {
                    Some(a) => a.flags = *flags,
                    None => self.add_addr(vip, *flags),
                }
            }
            Op::AddVip { vip, .. } => {
                let flags = vip_flags(vip);
                match self.addrs.iter_mut().find(|a| same_addr(a, vip)) {
                    Some(a) => a.flags = flags,
                    None => self.add_addr(vip, flags),
                }
            }
            Op::SetSysctl { key, to, .. } => {
                self.sysctls.insert(key.clone(), to.clone());
            }
            Op::AddArpRule(r) => {
                self.arp_rules.push(Some(r.clone()));
                self.arp_filter_table = true;
            }
            Op::DelArpRule(r) => {
                if let Some(i) = self.arp_rules.iter().position(|x| x.as_ref() == Some(r)) {
                    self.arp_rules.remove(i);
                }
            }
            Op::DropArpFilterTable => self.drop_arp_filter_table_if_empty()?,
            Op::NftReplace { table, .. } => self.nft = Some(table.clone()),
            Op::NftDelete { .. } => self.nft = None,
            Op::NftRestore(raw) => self.nft = Some(nftables::parse(raw)),
        }
        Ok(())
    }
    fn drop_arp_filter_table_if_empty(&mut self) -> Result<(), ApplyError> {
        if self.arp_rules.is_empty() {
            self.arp_filter_table = false;
        }
        Ok(())
    }
    fn save(&mut self, owned: &Owned) -> Result<(), ApplyError> {
        self.record = owned.clone();
        Ok(())
    }
    fn crash(&mut self, step: usize) -> ApplyError {
        ApplyError(format!("crashed before step {step}"))
    }
}

/// The desired items for a config, as `preflight::check` derives them.
pub fn desired(method: ArpMethod, vips: &[Vip]) -> Vec<Item> {
    let v4: Vec<Ipv4Addr> = vips
        .iter()
        .filter_map(|v| match v.address {
            IpAddr::V4(a) => Some(a),
            _ => None,
        })
        .collect();
    let mut items = arp::backend(method).desired(&v4, "eth0", Some(rip()));
    items.extend(vips.iter().cloned().map(Item::Vip));
    items
}

pub fn up_plan(host: &SimHost, method: ArpMethod, vips: &[Vip]) -> plan::Plan {
    plan::build(&desired(method, vips), &host.observe(), &host.record)
}

pub fn down_plan(host: &SimHost, vips: &[Vip]) -> plan::Plan {
    let actual = host.observe();
    let owned = plan::adopt_present(&host.record, &actual, vips);
    plan::build(&[], &actual, &owned)
}

fn exec(host: &mut SimHost, plan: &plan::Plan, faults: Faults) -> Result<Vec<String>, ApplyError> {
    let owned = host.record.clone();
    futures::executor::block_on(apply::execute_on(host, &owned, plan, faults))
}

pub fn up(
    host: &mut SimHost,
    method: ArpMethod,
    vips: &[Vip],
    faults: Faults,
) -> Result<Vec<String>, ApplyError> {
    let p = up_plan(host, method, vips);
    exec(host, &p, faults)
}

pub fn down(host: &mut SimHost, vips: &[Vip], faults: Faults) -> Result<Vec<String>, ApplyError> {
    let p = down_plan(host, vips);
    exec(host, &p, faults)
}

/// Applies `plan` step by step (no faults), calling `check` on the host after each step.
pub fn step_through(host: &mut SimHost, plan: &plan::Plan, mut check: impl FnMut(&SimHost)) {
    let owned = host.record.clone();
    for k in 1..=plan.steps.len() {
        // The state after k steps is the state a crash before step k+1 leaves.
        let mut h = host.clone();
        let _ = futures::executor::block_on(apply::execute_on(
            &mut h,
            &owned,
            plan,
            Faults {
                fail_at: None,
                crash_at: Some(k + 1),
            },
        ));
        check(&h);
    }
    let _ = exec(host, plan, Faults::default());
}

/// The property test: any starting host, any sequence of configs (each `up` may fail or
/// crash at any step), then `down`. It runs on this model (no root, ~1 ms a case).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The VIPs a config may hold: (address, device, prefixes it may have).
    const POOL: [(&str, &str, &[u8]); 4] = [
        ("192.0.2.100", "lo", &[32]),
        ("192.0.2.101", "eth0", &[32, 24]),
        ("192.0.2.102", "eth0", &[32, 28]),
        ("2001:db8::100", "lo", &[128]),
    ];

    fn pool_ips() -> Vec<IpAddr> {
        POOL.iter().map(|p| p.0.parse().unwrap()).collect()
    }

    #[derive(Debug, Clone)]
    struct Config {
        method: ArpMethod,
        vips: Vec<Vip>,
    }

    fn method() -> impl Strategy<Value = ArpMethod> {
        prop_oneof![
            Just(ArpMethod::Sysctl),
            Just(ArpMethod::Arptables),
            Just(ArpMethod::Nftables)
        ]
    }

    fn config() -> impl Strategy<Value = Config> {
        (
            method(),
            proptest::collection::vec(any::<Option<bool>>(), 4),
        )
            .prop_map(|(m, pick)| {
                let mut vips = Vec::new();
                for ((addr, dev, prefixes), p) in POOL.iter().zip(pick) {
                    // `sysctl` cannot hide a VIP on the NIC: the config refuses it.
                    if m == ArpMethod::Sysctl && *dev != "lo" {
                        continue;
                    }
                    if let Some(second) = p {
                        let prefix = if second {
                            prefixes[prefixes.len() - 1]
                        } else {
                            prefixes[0]
                        };
                        vips.push(vip(addr, prefix, dev));
                    }
                }
                Config { method: m, vips }
            })
    }

    fn rule(i: u8) -> Option<ArpRule> {
        let a = |n: u8| Ipv4Addr::new(192, 0, 2, n);
        match i {
            0 => None, // an admin's rule of another form
            1 => Some(ArpRule::DropIn { vip: a(100) }),
            2 => Some(ArpRule::MangleOut {
                vip: a(100),
                rip: rip(),
            }),
            3 => Some(ArpRule::DropIn { vip: a(101) }),
            4 => Some(ArpRule::MangleOut {
                vip: a(101),
                rip: rip(),
            }),
            _ => Some(ArpRule::DropIn { vip: a(102) }),
        }
    }

    /// Any starting host: the ARP sysctls at any value an admin may have set, the pool's
    /// VIPs already present (by hand, with any prefix), an admin's own arptables rules and
    /// rules identical to ours, with or without `table arp filter`.
    fn host() -> impl Strategy<Value = SimHost> {
        let sysctl = proptest::collection::vec(
            (
                prop::sample::select(vec!["0", "1", "2", "3", "8"]),
                prop::sample::select(vec!["0", "1", "2"]),
            ),
            2,
        );
        let present = proptest::collection::vec(
            prop::option::of((prop::sample::select(vec![32u8, 24, 28, 30]), any::<bool>())),
            4,
        );
        let rules = proptest::collection::vec(0u8..6, 0..5);
        (sysctl, present, rules, any::<bool>()).prop_map(|(sys, present, rules, table)| {
            let mut h = SimHost::fresh();
            for (dev, (ign, ann)) in ["all", "eth0"].iter().zip(sys) {
                h.sysctls
                    .insert(format!("net/ipv4/conf/{dev}/arp_ignore"), ign.into());
                h.sysctls
                    .insert(format!("net/ipv4/conf/{dev}/arp_announce"), ann.into());
            }
            for ((addr, dev, prefixes), p) in POOL.iter().zip(present) {
                if let Some((prefix, flagged)) = p {
                    let prefix = if *dev == "lo" { prefixes[0] } else { prefix };
                    let v = vip(addr, prefix, dev);
                    let flags = if flagged { vip_flags(&v) } else { 0 };
                    h.add_addr(&v, flags);
                }
            }
            h.arp_rules = rules.into_iter().map(rule).collect();
            h.arp_filter_table = table || !h.arp_rules.is_empty();
            h
        })
    }

    /// Injected fault for one run: none, a failure at step k, or a crash before step k.
    fn fault() -> impl Strategy<Value = Faults> {
        prop_oneof![
            2 => Just(Faults::default()),
            1 => (1usize..10).prop_map(|k| Faults { fail_at: Some(k), crash_at: None }),
            1 => (1usize..10).prop_map(|k| Faults { fail_at: None, crash_at: Some(k) }),
        ]
    }

    /// No VIP of the pool on the host answers ARP, except one that was unsuppressed before
    /// any `up` configured it (`exempt`): that one is the admin's state, not ours.
    fn assert_no_flux(h: &SimHost, exempt: &[IpAddr], when: &str) -> Result<(), TestCaseError> {
        let bad: Vec<Addr> = h
            .unsuppressed(&pool_ips())
            .into_iter()
            .filter(|a| !exempt.contains(&a.address))
            .collect();
        prop_assert!(
            bad.is_empty(),
            "{when}: VIP without suppression: {bad:?}\n{h:?}"
        );
        Ok(())
    }

    /// Runs one plan with `faults`, checking every state it can leave behind.
    fn run_checked(
        h: &mut SimHost,
        plan: &plan::Plan,
        faults: Faults,
        exempt: &[IpAddr],
        when: &str,
    ) -> Result<bool, TestCaseError> {
        let mut err = Ok(());
        step_through(&mut h.clone(), plan, |s| {
            if err.is_ok() {
                err = assert_no_flux(s, exempt, when);
            }
        });
        err?;
        let before = h.clone();
        let ok = exec(h, plan, faults).is_ok();
        if faults.fail_at.is_some_and(|k| k <= plan.steps.len()) {
            prop_assert!(!ok);
            prop_assert_eq!(h.canonical(), before.canonical(), "{}: rollback", when);
        }
        assert_no_flux(h, exempt, when)?;
        Ok(ok)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn up_then_down_restores_the_host_and_never_leaves_arp_flux(
            start in host(),
            seq in proptest::collection::vec((config(), fault()), 1..5),
            down_fault in fault(),
        ) {
            let mut h = start.clone();
            let mut exempt: Vec<IpAddr> = start.unsuppressed(&pool_ips()).iter().map(|a| a.address).collect();
            let mut upped: Vec<Vip> = Vec::new();
            let mut adopted: Vec<Vip> = Vec::new();
            let mut faulted = false;
            for (i, (cfg, f)) in seq.iter().enumerate() {
                let plan = up_plan(&h, cfg.method, &cfg.vips);
                faulted |= f.fail_at.is_some() || f.crash_at.is_some();
                let ok = run_checked(&mut h, &plan, *f, &exempt, &format!("up #{i} {cfg:?} {f:?}"))?;
                // A crashed run leaves its intent recorded: its VIPs count as ours.
                if f.crash_at.is_some_and(|k| k <= plan.steps.len()) {
                    adopted.extend(cfg.vips.iter().cloned());
                }
                if ok {
                    exempt.retain(|a| !cfg.vips.iter().any(|v| v.address == *a));
                    upped.extend(cfg.vips.iter().cloned());
                    // Converged: a second `up` has nothing to do.
                    let again = up_plan(&h, cfg.method, &cfg.vips);
                    prop_assert!(again.steps.is_empty(), "up #{} not idempotent: {:?}", i, again.steps);
                }
            }
            let last = &seq[seq.len() - 1].0.vips;
            let plan = down_plan(&h, last);
            run_checked(&mut h, &plan, down_fault, &exempt, "down (with a fault)")?;
            let plan = down_plan(&h, last);
            prop_assert!(run_checked(&mut h, &plan, Faults::default(), &exempt, "down")?);

            // Byte-identical: sysctls, nftables, the arptables table and rules.
            prop_assert_eq!(&h.sysctls, &start.sysctls);
            prop_assert_eq!(&h.nft, &start.nft);
            prop_assert_eq!(h.arp_filter_table, start.arp_filter_table);
            if faulted || down_fault.fail_at.is_some() {
                prop_assert_eq!(&h.canonical().arp_rules, &start.canonical().arp_rules);
            } else {
                prop_assert_eq!(&h.arp_rules, &start.arp_rules);
            }
            prop_assert_eq!(&h.record, &Owned::default());
            // Addresses: the admin's own are untouched; no address of ours is left; a
            // configured VIP that was on the host before is removed with the others.
            let configured = |a: &Addr| upped.iter().chain(&adopted).chain(last).any(|v| v.address == a.address && SimHost::index(&v.device) == a.index);
            for a in &start.addrs {
                if !configured(a) {
                    prop_assert!(h.addrs.contains(a), "lost {:?}", a);
                }
            }
            for a in &h.addrs {
                prop_assert!(start.addrs.contains(a), "left behind {:?}", a);
            }
            for v in &upped {
                prop_assert!(!h.addrs.iter().any(|a| a.address == v.address && SimHost::index(&v.device) == a.index),
                    "configured VIP {} left after down", v.cidr());
            }
            if !start.addrs.iter().any(|a| pool_ips().contains(&a.address)) && !faulted && down_fault.fail_at.is_none() {
                prop_assert_eq!(&h, &start, "a host without VIPs comes back byte-identical");
            }
        }
    }
}
