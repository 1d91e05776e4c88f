//! `lvs-cert renew`: replays the recorded `acme` run. `acme` itself does nothing when the
//! certificate is not due, takes the pool lock, and installs a certificate another node
//! just issued, so this is safe from a timer on every node.

use crate::cli::{AcmeArgs, RenewArgs};
use crate::error::usage;
use anyhow::{Context, Result};

pub async fn run(r: &RenewArgs) -> Result<()> {
    let local = r.state_dir.join("renewal.json");
    let (path, from_shared) = if local.exists() {
        (local, false)
    } else if let Some(s) = &r.shared_dir {
        (s.join("renewal.json"), true)
    } else {
        return Err(usage(
            format!("--state-dir {}", r.state_dir.display()),
            "no renewal.json: `lvs-cert acme` has not run on this node",
            "run `lvs-cert acme ...` once, or pass --shared-dir DIR to use the pool's record",
        ));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        usage(
            path.display().to_string(),
            format!("cannot read: {e}"),
            "run `lvs-cert acme ...` once",
        )
    })?;
    let mut a: AcmeArgs = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a renewal record; re-run `lvs-cert acme`",
            path.display()
        )
    })?;
    a.force = r.force;
    a.state_dir = r.state_dir.clone();
    if from_shared {
        a.node = None; // the record was written by another node: this one is found by hostname
    }
    crate::acme::run(&a).await
}
