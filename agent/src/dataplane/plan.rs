//! The one plan: desired items vs the actual host vs what we own. `up` is the plan for the
//! config's items, `down` the plan for no items; `--dry-run` prints it and `status` is its
//! per-item view. Steps come in four phases so that at no moment the host answers ARP for
//! a VIP: (1) remove VIPs no longer wanted, (2) install suppression, (3) add VIPs,
//! (4) remove suppression no longer wanted.

use super::arp::{arptables, nftables, sysctl as arp_sysctl};
use super::model::{Actual, ArpRule, Item, NftTable, Owned};
use super::sysctl;
use lvs_shared::config::Vip;
use netlink_packet_route::address::AddressFlags;

#[derive(Debug, Clone)]
pub enum Op {
    /// The VIP and its flags as observed, so a rollback puts back exactly that address.
    DelVip(Vip, u32),
    /// Rollback only: an address put back, or its flags reset, as it was.
    RestoreVip {
        vip: Vip,
        flags: u32,
    },
    /// `existed`: the address was there with other flags (these) and is updated in place.
    AddVip {
        vip: Vip,
        existed: Option<u32>,
    },
    SetSysctl {
        key: String,
        from: String,
        to: String,
        restore: bool,
    },
    AddArpRule(ArpRule),
    DelArpRule(ArpRule),
    DropArpFilterTable,
    NftReplace {
        table: NftTable,
        previous: Option<String>,
    },
    NftDelete {
        previous: String,
    },
    /// Rollback only: put back a previous listing of our table exactly.
    NftRestore(String),
}

impl Op {
    pub fn describe(&self) -> String {
        match self {
            Op::DelVip(v, _) => format!("remove VIP {} from {}", v.cidr(), v.device),
            Op::RestoreVip { vip, .. } => format!("put back {} on {}", vip.cidr(), vip.device),
            Op::AddVip { vip, existed } => {
                let flags = if vip.is_v4() {
                    if vip.device == "lo" {
                        ""
                    } else {
                        " (noprefixroute, real IP stays primary)"
                    }
                } else {
                    " (nodad, preferred_lft 0)"
                };
                let verb = if existed.is_some() { "update" } else { "add" };
                format!("{verb} VIP {} on {}{flags}", vip.cidr(), vip.device)
            }
            Op::SetSysctl {
                key,
                from,
                to,
                restore,
            } => {
                let verb = if *restore { "restore" } else { "set" };
                format!("{verb} {} = {to} (now {from})", sysctl::display(key))
            }
            Op::AddArpRule(r) => format!("add {}", arptables::describe(r)),
            Op::DelArpRule(r) => {
                format!("remove {}", arptables::describe(r)).replace(" -A ", " -D ")
            }
            Op::DropArpFilterTable => {
                "remove the empty `table arp filter` that arptables-nft created".into()
            }
            Op::NftReplace { table, .. } => format!(
                "replace nftables `table arp {}` ({} VIPs, real IP {}) in one transaction",
                nftables::TABLE,
                table.vips.len(),
                table.rip
            ),
            Op::NftDelete { .. } => format!("delete nftables `table arp {}`", nftables::TABLE),
            Op::NftRestore(_) => format!(
                "restore the previous nftables `table arp {}`",
                nftables::TABLE
            ),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Op>,
    /// The record to persist before the first step (owned ∪ what this plan creates).
    pub intent: Owned,
    /// The record after every step succeeded.
    pub done: Owned,
    /// arptables-nft's `table arp filter` is absent and this plan adds a rule, which
    /// creates it: a rollback drops it again.
    pub creates_arp_filter_table: bool,
}

fn same_vip(a: &Vip, b: &Vip) -> bool {
    a.address == b.address && a.device == b.device && a.prefix == b.prefix
}

/// Whether the VIP is on its device with the right prefix and flags.
pub fn vip_ok(actual: &Actual, vip: &Vip) -> Result<(), String> {
    let Some(a) = actual.vip_addr(vip) else {
        return Err(match actual.other_forms(vip).first() {
            Some((other, _)) => format!("present as /{}", other.prefix),
            None => "absent".into(),
        });
    };
    if a.prefix != vip.prefix {
        return Err(format!("present as /{}", a.prefix));
    }
    if vip.address.is_ipv6() {
        if a.flags
            .intersects(AddressFlags::Tentative | AddressFlags::Dadfailed)
        {
            return Err("tentative or dadfailed".into());
        }
        if !a.flags.contains(AddressFlags::Nodad) || !a.flags.contains(AddressFlags::Deprecated) {
            return Err(format!(
                "flags [{}], want nodad and preferred_lft 0",
                a.flag_names().join(",")
            ));
        }
    }
    Ok(())
}

pub fn item_ok(actual: &Actual, item: &Item) -> Result<(), String> {
    match item {
        Item::Vip(v) => vip_ok(actual, v),
        Item::Sysctl { key, value } => {
            let cur = actual.sysctls.get(key).map(String::as_str).unwrap_or("?");
            if arp_sysctl::satisfied(key, cur, value) {
                Ok(())
            } else {
                Err(format!("is {cur}"))
            }
        }
        Item::ArpRule(r) => match &actual.arp_rules {
            Some(rules) if rules.contains(r) => Ok(()),
            Some(_) => Err("missing".into()),
            None => Err("arptables not available".into()),
        },
        Item::NftTable(t) => match &actual.nft {
            Some((cur, _)) if cur == t => Ok(()),
            Some(_) => Err("differs".into()),
            None => Err("absent".into()),
        },
    }
}

pub fn build(desired: &[Item], actual: &Actual, owned: &Owned) -> Plan {
    let mut steps = Vec::new();
    let mut intent = owned.clone();
    let mut done = owned.clone();
    let want_vips: Vec<&Vip> = desired
        .iter()
        .filter_map(|i| match i {
            Item::Vip(v) => Some(v),
            _ => None,
        })
        .collect();

    // (1) VIPs we own that are no longer wanted. A VIP whose prefix changes is replaced in
    // (3) instead, new form first, so its address never disappears.
    for v in &owned.vips {
        if want_vips.iter().any(|w| same_vip(w, v)) {
            continue;
        }
        let reshaped = want_vips
            .iter()
            .any(|w| w.address == v.address && w.device == v.device);
        if let (Some(a), false) = (actual.vip_addr(v), reshaped) {
            steps.push(Op::DelVip(v.clone(), a.flags.bits()));
        }
        if !reshaped {
            done.vips.retain(|x| !same_vip(x, v));
        }
    }

    // (2) Suppression before any VIP appears.
    let arp_filter_absent = actual.arp_filter_table == Some(false);
    let mut adding_rules = false;
    for it in desired {
        if item_ok(actual, it).is_ok() {
            continue;
        }
        match it {
            Item::Sysctl { key, value } => {
                let from = actual.sysctls.get(key).cloned().unwrap_or_default();
                intent
                    .sysctl_orig
                    .entry(key.clone())
                    .or_insert_with(|| from.clone());
                done.sysctl_orig
                    .entry(key.clone())
                    .or_insert_with(|| from.clone());
                steps.push(Op::SetSysctl {
                    key: key.clone(),
                    from,
                    to: value.clone(),
                    restore: false,
                });
            }
            Item::ArpRule(r) => {
                adding_rules = true;
                if !intent.arp_rules.contains(r) {
                    intent.arp_rules.push(r.clone());
                    done.arp_rules.push(r.clone());
                }
                steps.push(Op::AddArpRule(r.clone()));
            }
            Item::NftTable(t) => {
                intent.nft_table = true;
                done.nft_table = true;
                steps.push(Op::NftReplace {
                    table: t.clone(),
                    previous: actual.nft.as_ref().map(|(_, raw)| raw.clone()),
                });
            }
            Item::Vip(_) => {}
        }
    }
    let creates_arp_filter_table = adding_rules && arp_filter_absent;
    if adding_rules && arp_filter_absent && owned.arp_rules.is_empty() {
        intent.arp_filter_table = true;
        done.arp_filter_table = true;
    }

    // (3) The VIPs. Every configured VIP is ours once `up` ran, also one that was on the
    // host before (adopted): `down` removes it with the others, so a configured VIP never
    // stays on the host once its suppression is gone. The same address with another
    // prefix on the device is replaced: added in the new form, then the old one removed.
    for v in &want_vips {
        if !owned.vips.iter().any(|x| same_vip(x, v)) {
            intent.vips.push((*v).clone());
            done.vips.push((*v).clone());
        }
        if vip_ok(actual, v).is_err() {
            steps.push(Op::AddVip {
                vip: (*v).clone(),
                existed: actual.vip_addr(v).map(|a| a.flags.bits()),
            });
        }
        for (old, flags) in actual.other_forms(v) {
            steps.push(Op::DelVip(old.clone(), flags));
            done.vips.retain(|x| !same_vip(x, &old));
        }
    }

    // (4) Suppression no longer wanted, restored exactly as it was.
    for (key, orig) in &owned.sysctl_orig {
        if desired
            .iter()
            .any(|i| matches!(i, Item::Sysctl { key: k, .. } if k == key))
        {
            continue;
        }
        let cur = actual.sysctls.get(key).cloned().unwrap_or_default();
        if &cur != orig {
            steps.push(Op::SetSysctl {
                key: key.clone(),
                from: cur,
                to: orig.clone(),
                restore: true,
            });
        }
        done.sysctl_orig.remove(key);
    }
    for r in &owned.arp_rules {
        if desired
            .iter()
            .any(|i| matches!(i, Item::ArpRule(x) if x == r))
        {
            continue;
        }
        if actual
            .arp_rules
            .as_ref()
            .is_some_and(|rules| rules.contains(r))
        {
            steps.push(Op::DelArpRule(r.clone()));
        }
        done.arp_rules.retain(|x| x != r);
    }
    if owned.nft_table && !desired.iter().any(|i| matches!(i, Item::NftTable(_))) {
        if let Some((_, raw)) = &actual.nft {
            steps.push(Op::NftDelete {
                previous: raw.clone(),
            });
        }
        done.nft_table = false;
    }
    // Last: it has no inverse, so no later step can fail and leave it undone.
    if done.arp_rules.is_empty() && owned.arp_filter_table {
        if actual.arp_filter_table == Some(true) {
            steps.push(Op::DropArpFilterTable);
        }
        done.arp_filter_table = false;
    }
    Plan {
        steps,
        intent,
        done,
        creates_arp_filter_table,
    }
}

/// The step that undoes `op`, if any (used to roll back a failed run).
pub fn inverse(op: &Op) -> Option<Op> {
    Some(match op {
        Op::DelVip(v, flags) => Op::RestoreVip {
            vip: v.clone(),
            flags: *flags,
        },
        Op::RestoreVip { .. } => return None,
        Op::AddVip {
            vip,
            existed: Some(flags),
        } => Op::RestoreVip {
            vip: vip.clone(),
            flags: *flags,
        },
        Op::AddVip { vip, existed: None } => Op::DelVip(vip.clone(), 0),
        Op::SetSysctl {
            key,
            from,
            to,
            restore,
        } => Op::SetSysctl {
            key: key.clone(),
            from: to.clone(),
            to: from.clone(),
            restore: !restore,
        },
        Op::AddArpRule(r) => Op::DelArpRule(r.clone()),
        Op::DelArpRule(r) => Op::AddArpRule(r.clone()),
        Op::DropArpFilterTable => return None,
        Op::NftReplace {
            previous: Some(raw),
            ..
        } => Op::NftRestore(raw.clone()),
        Op::NftReplace { previous: None, .. } => Op::NftDelete {
            previous: String::new(),
        },
        Op::NftDelete { previous } => Op::NftRestore(previous.clone()),
        Op::NftRestore(_) => return None,
    })
}

/// The record `down` plans with: what we own, plus the configured VIPs that sit on the
/// host exactly as configured (adopted by an older version without a record, or put
/// there by hand), so `down` never leaves a configured VIP without its suppression.
pub fn adopt_present(owned: &Owned, actual: &Actual, vips: &[Vip]) -> Owned {
    let mut o = owned.clone();
    for v in vips {
        if actual.vip_addr(v).is_some() && !o.vips.iter().any(|x| same_vip(x, v)) {
            o.vips.push(v.clone());
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::apply::Faults;
    use super::super::sim::{self, vip, SimHost};
    use super::*;
    use lvs_shared::config::ArpMethod;

    fn kinds(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .map(|o| {
                o.describe()
                    .split(' ')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn fresh_up_installs_suppression_before_the_vip_and_records_it() {
        let h = SimHost::fresh();
        let v = vip("192.0.2.100", 32, "lo");
        let p = sim::up_plan(&h, ArpMethod::Arptables, std::slice::from_ref(&v));
        assert_eq!(
            kinds(&p),
            ["add arptables", "add arptables", "add VIP"],
            "{:?}",
            p.steps
        );
        assert_eq!(p.intent.vips.len(), 1);
        assert_eq!(p.intent.arp_rules.len(), 2);
        assert!(
            p.intent.arp_filter_table,
            "arptables-nft's table is ours to drop"
        );
        assert_eq!(p.intent, p.done);
    }

    #[test]
    fn converged_host_has_an_empty_plan() {
        let mut h = SimHost::fresh();
        let v = [vip("192.0.2.100", 32, "lo")];
        sim::up(&mut h, ArpMethod::Sysctl, &v, Faults::default()).unwrap();
        let p = sim::up_plan(&h, ArpMethod::Sysctl, &v);
        assert!(p.steps.is_empty(), "{:?}", p.steps);
        assert_eq!(p.done, h.record);
    }

    #[test]
    fn down_removes_vips_first_and_restores_nonzero_sysctls() {
        let mut h = SimHost::fresh();
        h.sysctls
            .insert("net/ipv4/conf/eth0/arp_announce".into(), "1".into());
        let start = h.clone();
        let v = [vip("192.0.2.100", 32, "lo")];
        sim::up(&mut h, ArpMethod::Sysctl, &v, Faults::default()).unwrap();
        assert_eq!(h.record.sysctl_orig["net/ipv4/conf/eth0/arp_announce"], "1");
        let p = sim::down_plan(&h, &v);
        assert!(matches!(p.steps[0], Op::DelVip(..)), "{:?}", p.steps);
        assert!(p.steps[1..]
            .iter()
            .all(|o| matches!(o, Op::SetSysctl { restore: true, .. })));
        sim::down(&mut h, &v, Faults::default()).unwrap();
        assert_eq!(h, start);
    }

    #[test]
    fn stricter_arp_ignore_is_left_alone() {
        for strict in ["2", "3", "8"] {
            let mut h = SimHost::fresh();
            h.sysctls
                .insert("net/ipv4/conf/all/arp_ignore".into(), strict.into());
            let v = [vip("192.0.2.100", 32, "lo")];
            let p = sim::up_plan(&h, ArpMethod::Sysctl, &v);
            assert!(
                !p.steps.iter().any(|o| matches!(o, Op::SetSysctl { key, .. } if key == "net/ipv4/conf/all/arp_ignore")),
                "{strict}: {:?}",
                p.steps
            );
            assert!(!p
                .intent
                .sysctl_orig
                .contains_key("net/ipv4/conf/all/arp_ignore"));
        }
    }

    #[test]
    fn an_identical_rule_that_was_there_is_not_ours() {
        let mut h = SimHost::fresh();
        let a: std::net::Ipv4Addr = "192.0.2.100".parse().unwrap();
        h.arp_rules = vec![None, Some(ArpRule::DropIn { vip: a })];
        h.arp_filter_table = true;
        let start = h.clone();
        let v = [vip("192.0.2.100", 32, "lo")];
        let p = sim::up_plan(&h, ArpMethod::Arptables, &v);
        assert_eq!(kinds(&p), ["add arptables", "add VIP"], "{:?}", p.steps);
        assert!(!p.intent.arp_rules.contains(&ArpRule::DropIn { vip: a }));
        assert!(!p.intent.arp_filter_table, "the table existed before");
        sim::up(&mut h, ArpMethod::Arptables, &v, Faults::default()).unwrap();
        sim::down(&mut h, &v, Faults::default()).unwrap();
        assert_eq!(h, start, "the admin's identical rule must stay");
    }

    /// A VIP present before the first `up` (a node configured by hand) is removed by
    /// `down` like one `up` added: a configured VIP never stays without its suppression.
    #[test]
    fn adopted_vip_goes_with_down_never_left_without_suppression() {
        for (method, dev) in [
            (ArpMethod::Sysctl, "lo"),
            (ArpMethod::Arptables, "eth0"),
            (ArpMethod::Nftables, "lo"),
        ] {
            let mut h = SimHost::fresh();
            let v = [vip("192.0.2.100", 32, dev)];
            h.add_addr(&v[0], 0);
            sim::up(&mut h, method, &v, Faults::default()).unwrap();
            assert!(h.unsuppressed(&[v[0].address]).is_empty());
            sim::down(&mut h, &v, Faults::default()).unwrap();
            assert!(
                h.unsuppressed(&[v[0].address]).is_empty(),
                "{method:?}: down left the VIP without suppression (ARP flux): {:?}",
                h.addrs
            );
            assert!(!h.has(&v[0]), "{method:?}: adopted VIP left by down");
            assert_eq!(h.record, Owned::default());
        }
    }

    /// Nodes set up by an older version have no record of an adopted VIP: `down` finds
    /// the configured VIPs on the host itself.
    #[test]
    fn down_removes_a_configured_vip_missing_from_the_record() {
        let mut h = SimHost::fresh();
        let v = [vip("192.0.2.100", 32, "lo")];
        h.add_addr(&v[0], 0);
        sim::up(&mut h, ArpMethod::Sysctl, &v, Faults::default()).unwrap();
        h.record.vips.clear();
        sim::down(&mut h, &v, Faults::default()).unwrap();
        assert!(!h.has(&v[0]));
        assert!(h.unsuppressed(&[v[0].address]).is_empty());
    }

    #[test]
    fn prefix_change_keeps_ownership() {
        let mut h = SimHost::fresh();
        let start = h.clone();
        let v32 = [vip("192.0.2.102", 32, "eth0")];
        let v24 = [vip("192.0.2.102", 24, "eth0")];
        sim::up(&mut h, ArpMethod::Nftables, &v32, Faults::default()).unwrap();
        sim::up(&mut h, ArpMethod::Nftables, &v24, Faults::default()).unwrap();
        assert!(h.has(&v24[0]) && !h.has(&v32[0]), "{:?}", h.addrs);
        assert!(
            h.record.vips.iter().any(|x| x.prefix == 24),
            "the /24 is ours: {:?}",
            h.record.vips
        );
        sim::down(&mut h, &[], Faults::default()).unwrap();
        assert_eq!(h, start, "down after a prefix change left something");
    }

    #[test]
    fn a_vip_present_with_another_prefix_is_replaced_not_duplicated() {
        let mut h = SimHost::fresh();
        h.add_addr(&vip("192.0.2.102", 28, "eth0"), 0);
        let v = [vip("192.0.2.102", 32, "eth0")];
        sim::up(&mut h, ArpMethod::Arptables, &v, Faults::default()).unwrap();
        let forms = h.addrs.iter().filter(|a| a.address == v[0].address).count();
        assert_eq!(forms, 1, "{:?}", h.addrs);
        let p = sim::up_plan(&h, ArpMethod::Arptables, &v);
        assert!(p.steps.is_empty(), "drift after up: {:?}", p.steps);
    }

    type Run<'a> =
        dyn Fn(&mut SimHost, Faults) -> Result<Vec<String>, super::super::ApplyError> + 'a;

    /// Every step of a fresh `up`, a method change and a `down` fails in turn: the host and
    /// the record come back exactly.
    #[test]
    fn rollback_at_every_step_restores_host_and_record() {
        let v = [vip("192.0.2.100", 32, "lo"), vip("192.0.2.101", 32, "eth0")];
        let lo_only = &v[..1];
        for method in [ArpMethod::Sysctl, ArpMethod::Arptables, ArpMethod::Nftables] {
            let vips = if method == ArpMethod::Sysctl {
                lo_only
            } else {
                &v[..]
            };
            let h0 = SimHost::fresh();
            let mut up1 = h0.clone();
            sim::up(&mut up1, method, vips, Faults::default()).unwrap();
            let other = if method == ArpMethod::Nftables {
                ArpMethod::Arptables
            } else {
                ArpMethod::Nftables
            };
            let cases: Vec<(&str, SimHost, Box<Run>)> = vec![
                (
                    "up",
                    h0.clone(),
                    Box::new(move |h: &mut SimHost, f| sim::up(h, method, vips, f)),
                ),
                (
                    "change",
                    up1.clone(),
                    Box::new(move |h: &mut SimHost, f| sim::up(h, other, lo_only, f)),
                ),
                (
                    "down",
                    up1.clone(),
                    Box::new(move |h: &mut SimHost, f| sim::down(h, vips, f)),
                ),
            ];
            for (what, start, run) in cases {
                let mut probe = start.clone();
                let n = run(&mut probe, Faults::default()).unwrap().len();
                assert!(n > 0, "{method:?} {what}: nothing to do");
                for k in 1..=n {
                    let mut h = start.clone();
                    let r = run(
                        &mut h,
                        Faults {
                            fail_at: Some(k),
                            crash_at: None,
                        },
                    );
                    assert!(r.unwrap_err().0.contains("rolled back"));
                    assert_eq!(
                        h.canonical(),
                        start.canonical(),
                        "{method:?} {what}: failure at step {k} of {n}"
                    );
                    if what == "up" {
                        assert_eq!(h, start, "{method:?} up: failure at step {k}: order");
                    }
                }
            }
        }
    }
}
