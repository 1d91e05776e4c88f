//! The data plane: desired vs actual state of the VIPs and their ARP suppression, and the
//! one plan that `up`, `down`, `status`, `--dry-run` and the daemon's repairs are views of.
//!
//! API used by the daemon (stable):
//! - `converge(&cfg) -> Result<Outcome, ApplyError>`: like `up`; returns what changed.
//! - `observe(&cfg) -> Result<Status, ApplyError>`: read-only; `Status::converged()`.
//! - `teardown(&cfg) -> Result<Outcome, ApplyError>`: like `down`.

use lvs_shared::config::NodeConfig;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// What one converge/teardown run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Outcome {
    /// Human-readable descriptions of the steps applied, in order. Empty: nothing to do.
    pub applied: Vec<String>,
}

/// Read-only view of every managed item.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Status {
    pub items: Vec<ItemStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemStatus {
    /// "vip" or "suppression".
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

pub async fn converge(_cfg: &NodeConfig) -> Result<Outcome, ApplyError> {
    Err(ApplyError("not implemented yet".into()))
}

pub async fn teardown(_cfg: &NodeConfig) -> Result<Outcome, ApplyError> {
    Err(ApplyError("not implemented yet".into()))
}

pub async fn observe(_cfg: &NodeConfig) -> Result<Status, ApplyError> {
    Err(ApplyError("not implemented yet".into()))
}
