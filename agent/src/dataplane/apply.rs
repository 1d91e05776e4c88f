//! Executes a plan: record intent, run the steps in order, and on the first failure undo
//! what this run did, newest first, so a failed `up` leaves the host as it found it.
//! The steps land on a `Host`: the live one (netlink, /proc/sys, the tools, state_dir) or,
//! in the unit and property tests, a model of one (`dataplane::sim`), so both run the
//! same ordering, recording and rollback code.

use super::arp::{arptables, nftables};
use super::model::{Actual, Owned};
use super::netlink::Netlink;
use super::plan::{inverse, Op, Plan};
use super::{state, sysctl, ApplyError};
use std::path::Path;

/// Where a plan's steps are applied and its record is kept.
#[allow(async_fn_in_trait)] // used with concrete types only, never as `dyn`
pub trait Host {
    async fn run(&mut self, op: &Op) -> Result<(), ApplyError>;
    /// arptables-nft's `table arp filter`, dropped when no chain holds a rule.
    fn drop_arp_filter_table_if_empty(&mut self) -> Result<(), ApplyError>;
    /// Persists the owned-state record (write-ahead).
    fn save(&mut self, owned: &Owned) -> Result<(), ApplyError>;
    /// Stops the run before `step` as a kill -9 would: no rollback, the intent stays.
    fn crash(&mut self, step: usize) -> ApplyError;
}

/// Injected faults (1-based step numbers): `fail_at` makes that step fail, to prove the
/// rollback; `crash_at` stops before that step, like a kill -9 between steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub fail_at: Option<usize>,
    pub crash_at: Option<usize>,
}

/// The lab's hooks, `LVS_NODE_FAIL_AT_STEP=N` and `LVS_NODE_CRASH_AT_STEP=N`, exist only
/// in builds with the `fault-injection` feature (tests/run.sh); release builds never read
/// them.
#[cfg(feature = "fault-injection")]
pub fn faults_from_env() -> Faults {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    Faults {
        fail_at: var("LVS_NODE_FAIL_AT_STEP"),
        crash_at: var("LVS_NODE_CRASH_AT_STEP"),
    }
}

#[cfg(not(feature = "fault-injection"))]
pub fn faults_from_env() -> Faults {
    Faults::default()
}

/// The live host.
pub struct Live<'a> {
    pub nl: &'a Netlink,
    pub actual: &'a Actual,
    pub state_dir: &'a Path,
}

impl Host for Live<'_> {
    async fn run(&mut self, op: &Op) -> Result<(), ApplyError> {
        run(self.nl, self.actual, op).await
    }
    fn drop_arp_filter_table_if_empty(&mut self) -> Result<(), ApplyError> {
        arptables::drop_filter_table_if_empty()
    }
    fn save(&mut self, owned: &Owned) -> Result<(), ApplyError> {
        state::save(self.state_dir, owned)
    }
    fn crash(&mut self, step: usize) -> ApplyError {
        eprintln!("injected crash: exiting before step {step}");
        std::process::exit(137);
    }
}

pub async fn execute(
    nl: &Netlink,
    actual: &Actual,
    owned: &Owned,
    plan: &Plan,
    state_dir: &Path,
) -> Result<Vec<String>, ApplyError> {
    let mut live = Live {
        nl,
        actual,
        state_dir,
    };
    execute_on(&mut live, owned, plan, faults_from_env()).await
}

pub async fn execute_on<H: Host>(
    host: &mut H,
    owned: &Owned,
    plan: &Plan,
    faults: Faults,
) -> Result<Vec<String>, ApplyError> {
    if plan.steps.is_empty() {
        if &plan.done != owned {
            host.save(&plan.done)?;
        }
        return Ok(Vec::new());
    }
    if &plan.intent != owned {
        host.save(&plan.intent)?;
    }
    let mut done: Vec<&Op> = Vec::new();
    for (i, op) in plan.steps.iter().enumerate() {
        if faults.crash_at == Some(i + 1) {
            return Err(host.crash(i + 1));
        }
        let res = if faults.fail_at == Some(i + 1) {
            Err(ApplyError(format!("injected failure at step {}", i + 1)))
        } else {
            host.run(op).await
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
                        if let Err(e) = host.run(&inv).await {
                            rollback_errors.push(format!("{}: {}", inv.describe(), e.0));
                        }
                    }
                }
                // arptables-nft created `table arp filter` in this run: take it away too.
                if plan.creates_arp_filter_table {
                    if let Err(e) = host.drop_arp_filter_table_if_empty() {
                        rollback_errors.push(format!("drop empty arp filter table: {}", e.0));
                    }
                }
                if rollback_errors.is_empty() {
                    host.save(owned)?;
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
        host.save(&plan.done)?;
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
        Op::DelVip(v, _) => match actual.link_index(&v.device) {
            Some(i) => nl.del_vip(v, i).await,
            None => Ok(()),
        },
        Op::RestoreVip { vip, flags } => nl.restore_addr(vip, index(&vip.device)?, *flags).await,
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
