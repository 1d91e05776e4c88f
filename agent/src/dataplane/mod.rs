//! The data plane: the VIPs and their ARP suppression as one model of desired vs actual
//! state. `up`, `down`, `status`, `--dry-run` and the daemon's repairs are views of the
//! same plan (`plan::build`).
//!
//! API used by the daemon (stable):
//! - `converge(&cfg)`: like `up`; returns what changed (empty: nothing to do).
//! - `teardown(&cfg)`: like `down`.
//! - `observe(&cfg)`: read-only `Status`.

pub mod apply;
pub mod arp;
pub mod model;
pub mod netlink;
pub mod observe;
pub mod plan;
pub mod preflight;
#[cfg(test)]
mod sim;
pub mod state;
pub mod sysctl;

use lvs_shared::config::NodeConfig;
use lvs_shared::ConfigError;
use model::{Actual, Item, Owned};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// Why a run could not start or finish: bad config vs the host (exit 2, nothing changed),
/// or a failure while applying (exit 1, rolled back).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Apply(#[from] ApplyError),
}

impl From<Failure> for ApplyError {
    fn from(f: Failure) -> ApplyError {
        match f {
            Failure::Config(c) => ApplyError(c.to_string()),
            Failure::Apply(a) => a,
        }
    }
}

/// What one converge/teardown run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Outcome {
    /// The steps applied, in order. Empty: nothing to do.
    pub applied: Vec<String>,
}

/// Read-only view of every managed item.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Status {
    pub method: String,
    pub interface: String,
    pub real_ip: Option<String>,
    pub items: Vec<ItemStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemStatus {
    /// "vip", "sysctl", "arptables" or "nftables".
    pub kind: String,
    pub name: String,
    pub desired: String,
    pub actual: String,
    pub ok: bool,
}

impl Status {
    pub fn converged(&self) -> bool {
        self.items.iter().all(|i| i.ok)
    }
    pub fn vips_ok(&self) -> bool {
        self.items.iter().filter(|i| i.kind == "vip").all(|i| i.ok)
    }
    pub fn suppression_ok(&self) -> bool {
        self.items.iter().filter(|i| i.kind != "vip").all(|i| i.ok)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    Down,
}

/// Everything one run knows: the host, our record, the desired items and the plan.
pub struct Prepared {
    pub nl: netlink::Netlink,
    pub actual: Actual,
    pub owned: Owned,
    pub desired: preflight::Desired,
    pub plan: plan::Plan,
    _lock: Option<state::Lock>,
}

/// Observes the host and builds the plan. `lock`: this run will apply, so take the state
/// lock, but only once the config has passed preflight (a refused config creates
/// nothing, not even state_dir), then observe again under the lock.
pub async fn prepare(cfg: &NodeConfig, mode: Mode, lock: bool) -> Result<Prepared, Failure> {
    if lock && cfg.state_dir.is_dir() {
        // A previous run created state_dir: lock first and observe once.
        let l = state::lock(&cfg.state_dir).await?;
        let mut p = prepare_unlocked(cfg, mode).await?;
        p._lock = Some(l);
        return Ok(p);
    }
    let first = prepare_unlocked(cfg, mode).await?;
    if !lock || (first.plan.steps.is_empty() && first.plan.done == first.owned) {
        return Ok(first);
    }
    let l = state::lock(&cfg.state_dir).await?;
    let mut p = prepare_unlocked(cfg, mode).await?;
    p._lock = Some(l);
    Ok(p)
}

async fn prepare_unlocked(cfg: &NodeConfig, mode: Mode) -> Result<Prepared, Failure> {
    let nl = netlink::Netlink::connect()?;
    let owned = state::load(&cfg.state_dir)?;
    let mut actual = observe::links_and_addrs(&nl).await?;
    if let Some(ip) = preflight::node_ip(cfg, &actual) {
        if let Some(i) = owned.vips.iter().position(|v| v.address == ip) {
            return Err(ConfigError::new(
                state::path(&cfg.state_dir),
                format!("vips[{i}]"),
                format!("{ip} is this node's own address on `{}`, never a VIP lvs-node added", cfg.interface),
                "the state file is damaged or was edited: remove that entry (or the file, after checking `ip addr` and the ARP rules)",
            )
            .into());
        }
    }
    let desired = match mode {
        Mode::Up => preflight::check(cfg, &actual, &owned)?,
        Mode::Down => preflight::Desired {
            items: Vec::new(),
            rip: None,
        },
    };
    observe::tools(&mut actual, &desired.items, &owned)?;
    let plan = match mode {
        Mode::Up => plan::build(&desired.items, &actual, &owned),
        // Configured VIPs on the host go too, recorded or not (see plan::adopt_present).
        Mode::Down => plan::build(
            &desired.items,
            &actual,
            &plan::adopt_present(&owned, &actual, &cfg.vips),
        ),
    };
    Ok(Prepared {
        nl,
        actual,
        owned,
        desired,
        plan,
        _lock: None,
    })
}

impl Prepared {
    pub async fn apply(self, cfg: &NodeConfig) -> Result<Outcome, Failure> {
        let applied = apply::execute(
            &self.nl,
            &self.actual,
            &self.owned,
            &self.plan,
            &cfg.state_dir,
        )
        .await?;
        Ok(Outcome { applied })
    }

    pub fn status(&self, cfg: &NodeConfig) -> Status {
        let mut items: Vec<ItemStatus> = self
            .desired
            .items
            .iter()
            .map(|it| {
                let res = plan::item_ok(&self.actual, it);
                let (kind, name, desired) = describe(it);
                let actual = match &res {
                    Ok(()) => actual_text(&self.actual, it),
                    Err(why) => why.clone(),
                };
                ItemStatus {
                    kind,
                    name,
                    desired,
                    actual,
                    ok: res.is_ok(),
                }
            })
            .collect();
        // Things we created that the config no longer wants and that are still there.
        for op in &self.plan.steps {
            if let plan::Op::DelVip(..)
            | plan::Op::DelArpRule(_)
            | plan::Op::NftDelete { .. }
            | plan::Op::SetSysctl { restore: true, .. }
            | plan::Op::DropArpFilterTable = op
            {
                items.push(ItemStatus {
                    kind: "stale".into(),
                    name: op.describe(),
                    desired: "absent".into(),
                    actual: "present".into(),
                    ok: false,
                });
            }
        }
        Status {
            method: cfg.arp_method.as_str().into(),
            interface: cfg.interface.clone(),
            real_ip: self.desired.rip.map(|r| r.to_string()),
            items,
        }
    }
}

fn describe(it: &Item) -> (String, String, String) {
    match it {
        Item::Vip(v) => {
            let flags = if v.is_v4() { "" } else { " nodad,deprecated" };
            (
                "vip".into(),
                v.address.to_string(),
                format!("/{} on {}{flags}", v.prefix, v.device),
            )
        }
        Item::Sysctl { key, value } => ("sysctl".into(), sysctl::display(key), value.clone()),
        Item::ArpRule(r) => {
            let a = arp::arptables::args(r, "-A");
            ("arptables".into(), a[1..4].join(" "), a[4..].join(" "))
        }
        Item::NftTable(t) => (
            "nftables".into(),
            format!("table arp {}", arp::nftables::TABLE),
            format!("{} VIPs, real IP {}", t.vips.len(), t.rip),
        ),
    }
}

fn actual_text(actual: &Actual, it: &Item) -> String {
    match it {
        Item::Vip(v) => match actual.vip_addr(v) {
            Some(a) => {
                let f = a.flag_names();
                if f.is_empty() {
                    format!("/{} on {}", a.prefix, v.device)
                } else {
                    format!("/{} on {} {}", a.prefix, v.device, f.join(","))
                }
            }
            None => "absent".into(),
        },
        Item::Sysctl { key, .. } => actual.sysctls.get(key).cloned().unwrap_or_default(),
        _ => "present".into(),
    }
}

/// The node's real IP as the data plane resolves it (`real_ip` or the NIC's primary).
pub async fn real_ip(cfg: &NodeConfig) -> Option<std::net::IpAddr> {
    let p = prepare(cfg, Mode::Up, false).await.ok()?;
    p.desired.rip.map(std::net::IpAddr::V4)
}

pub async fn converge(cfg: &NodeConfig) -> Result<Outcome, ApplyError> {
    Ok(prepare(cfg, Mode::Up, true).await?.apply(cfg).await?)
}

pub async fn teardown(cfg: &NodeConfig) -> Result<Outcome, ApplyError> {
    Ok(prepare(cfg, Mode::Down, true).await?.apply(cfg).await?)
}

pub async fn observe(cfg: &NodeConfig) -> Result<Status, ApplyError> {
    let p = prepare(cfg, Mode::Up, false).await?;
    Ok(p.status(cfg))
}
