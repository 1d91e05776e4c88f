//! Executes a plan: record intent, run the steps in order, and on the first failure undo
//! what this run did, newest first, so a failed `up` leaves the host as it found it.

use super::arp::{arptables, nftables};
use super::model::{Actual, Owned};
use super::netlink::Netlink;
use super::plan::{inverse, Op, Plan};
use super::{state, sysctl, ApplyError};
use std::path::Path;

/// Test hooks: `LVS_NODE_FAIL_AT_STEP=N` makes step N (1-based) fail, to prove rollback;
/// `LVS_NODE_CRASH_AT_STEP=N` exits at once before step N, like a kill -9 between steps.
const FAIL_ENV: &str = "LVS_NODE_FAIL_AT_STEP";
const CRASH_ENV: &str = "LVS_NODE_CRASH_AT_STEP";

pub async fn execute(
    nl: &Netlink,
    actual: &Actual,
    owned: &Owned,
    plan: &Plan,
    state_dir: &Path,
) -> Result<Vec<String>, ApplyError> {
    if plan.steps.is_empty() {
        if &plan.done != owned {
            state::save(state_dir, &plan.done)?;
        }
        return Ok(Vec::new());
    }
    if &plan.intent != owned {
        state::save(state_dir, &plan.intent)?;
    }
    let fail_at: Option<usize> = std::env::var(FAIL_ENV).ok().and_then(|v| v.parse().ok());
    let crash_at: Option<usize> = std::env::var(CRASH_ENV).ok().and_then(|v| v.parse().ok());
    let mut done: Vec<&Op> = Vec::new();
    for (i, op) in plan.steps.iter().enumerate() {
        if crash_at == Some(i + 1) {
            eprintln!("{CRASH_ENV}: exiting before step {}", i + 1);
            std::process::exit(137);
        }
        let res = if fail_at == Some(i + 1) {
            Err(ApplyError(format!(
                "injected failure at step {} ({FAIL_ENV})",
                i + 1
            )))
        } else {
            run(nl, actual, op).await
        };
        match res {
            Ok(()) => {
                tracing::info!(step = i + 1, "{}", op.describe());
                done.push(op);
            }
            Err(e) => {
                let msg = format!("step {} ({}) failed: {}", i + 1, op.describe(), e.0);
                tracing::error!("{msg}; rolling back {} step(s)", done.len());
                let mut rollback_errors = Vec::new();
                for op in done.iter().rev() {
                    if let Some(inv) = inverse(op) {
                        if let Err(e) = run(nl, actual, &inv).await {
                            rollback_errors.push(format!("{}: {}", inv.describe(), e.0));
                        }
                    }
                }
                // arptables-nft created `table arp filter` in this run: take it away too.
                if plan.intent.arp_filter_table && !owned.arp_filter_table {
                    if let Err(e) = arptables::drop_filter_table_if_empty() {
                        rollback_errors.push(format!("drop empty arp filter table: {}", e.0));
                    }
                }
                if rollback_errors.is_empty() {
                    state::save(state_dir, owned)?;
                    return Err(ApplyError(format!(
                        "{msg}\nrolled back the {} step(s) this run had applied; the host is as before",
                        done.len()
                    )));
                }
                // Keep the intent record: it covers everything that may still be ours.
                return Err(ApplyError(format!(
                    "{msg}\nrollback incomplete: {}\nrun `lvs-node down` to finish cleaning up",
                    rollback_errors.join("; ")
                )));
            }
        }
    }
    // One durable write per run where possible: when nothing is removed, the intent
    // already equals the final record.
    if plan.done != plan.intent {
        state::save(state_dir, &plan.done)?;
    }
    Ok(plan.steps.iter().map(Op::describe).collect())
}

async fn run(nl: &Netlink, actual: &Actual, op: &Op) -> Result<(), ApplyError> {
    let index = |dev: &str| {
        actual
            .link_index(dev)
            .ok_or_else(|| ApplyError(format!("device `{dev}` is gone")))
    };
    match op {
        Op::DelVip(v) => match actual.link_index(&v.device) {
            Some(i) => nl.del_vip(v, i).await,
            None => Ok(()),
        },
        Op::AddVip { vip, .. } => {
            nl.add_vip(vip, index(&vip.device)?, vip.device != "lo")
                .await
        }
        Op::SetSysctl { key, to, .. } => sysctl::write(key, to).map(|_| ()),
        Op::AddArpRule(r) => arptables::add(r),
        Op::DelArpRule(r) => arptables::del(r),
        Op::DropArpFilterTable => arptables::drop_filter_table_if_empty(),
        Op::NftReplace { table, previous } => nftables::replace(table, previous.is_some()),
        Op::NftDelete { .. } => nftables::delete(),
        Op::NftRestore(raw) => nftables::restore(raw),
    }
}
