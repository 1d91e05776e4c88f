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
    DelVip(Vip),
    /// `existed`: the address was there with wrong flags and is updated in place.
    AddVip {
        vip: Vip,
        existed: bool,
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
            Op::DelVip(v) => format!("remove VIP {} from {}", v.cidr(), v.device),
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
                let verb = if *existed { "update" } else { "add" };
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
}

fn same_vip(a: &Vip, b: &Vip) -> bool {
    a.address == b.address && a.device == b.device && a.prefix == b.prefix
}

/// Whether the VIP is on its device with the right prefix and flags.
pub fn vip_ok(actual: &Actual, vip: &Vip) -> Result<(), String> {
    let Some(a) = actual.vip_addr(vip) else {
        return Err("absent".into());
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

    // (1) VIPs we added that are no longer wanted.
    for v in &owned.vips {
        if want_vips.iter().any(|w| same_vip(w, v)) {
            continue;
        }
        if actual.vip_addr(v).is_some() {
            steps.push(Op::DelVip(v.clone()));
        }
        done.vips.retain(|x| !same_vip(x, v));
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
    if adding_rules && arp_filter_absent && owned.arp_rules.is_empty() {
        intent.arp_filter_table = true;
        done.arp_filter_table = true;
    }

    // (3) The VIPs.
    for v in &want_vips {
        if vip_ok(actual, v).is_ok() {
            continue;
        }
        let existed = actual.vip_addr(v).is_some();
        let owned_already = owned.vips.iter().any(|x| same_vip(x, v));
        if !existed && !owned_already {
            intent.vips.push((*v).clone());
            done.vips.push((*v).clone());
        }
        steps.push(Op::AddVip {
            vip: (*v).clone(),
            existed,
        });
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
    if done.arp_rules.is_empty() && owned.arp_filter_table {
        if actual.arp_filter_table == Some(true) {
            steps.push(Op::DropArpFilterTable);
        }
        done.arp_filter_table = false;
    }
    if owned.nft_table && !desired.iter().any(|i| matches!(i, Item::NftTable(_))) {
        if let Some((_, raw)) = &actual.nft {
            steps.push(Op::NftDelete {
                previous: raw.clone(),
            });
        }
        done.nft_table = false;
    }
    Plan {
        steps,
        intent,
        done,
    }
}

/// The step that undoes `op`, if any (used to roll back a failed run).
pub fn inverse(op: &Op) -> Option<Op> {
    Some(match op {
        Op::DelVip(v) => Op::AddVip {
            vip: v.clone(),
            existed: false,
        },
        Op::AddVip { existed: true, .. } => return None,
        Op::AddVip {
            vip,
            existed: false,
        } => Op::DelVip(vip.clone()),
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
