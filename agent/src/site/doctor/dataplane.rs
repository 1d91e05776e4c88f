//! `dataplane`: the VIPs and their ARP suppression are in place (what `lvs-node status`
//! shows), read with the same observer as `up` and the daemon.

use super::Finding;
use crate::dataplane::{ApplyError, Status};
use lvs_shared::config::NodeConfig;

pub const ID: &str = "dataplane";

pub fn finding(cfg: &NodeConfig, status: &Result<Status, ApplyError>) -> Finding {
    let st = match status {
        Ok(s) => s,
        Err(e) => return Finding::error(
            ID,
            "cannot observe the data plane",
            e.to_string(),
            "fix the problem above (interface name, real_ip, missing tool), then run `lvs-node up`",
        ),
    };
    let vips: Vec<String> = cfg.vips.iter().map(|v| v.cidr()).collect();
    if st.converged() {
        return Finding::ok(
            ID,
            format!(
                "VIPs and ARP suppression in place ({} VIP(s), method {})",
                vips.len(),
                st.method
            ),
            format!("{} on this node", vips.join(", ")),
        );
    }
    let bad: Vec<String> = st
        .items
        .iter()
        .filter(|i| !i.ok)
        .map(|i| {
            format!(
                "{} {}: want {}, have {}",
                i.kind, i.name, i.desired, i.actual
            )
        })
        .collect();
    let what = match (st.vips_ok(), st.suppression_ok()) {
        (false, true) => "VIP missing",
        (true, false) => "ARP suppression missing",
        _ => "VIP and ARP suppression missing",
    };
    let mut detail = String::new();
    if !st.vips_ok() {
        detail.push_str(
            "Without the VIP on the node, packets the director forwards to it (DR keeps the VIP as \
             destination) are not local and are dropped: the director's TCP check on 2811 still \
             passes, but clients' connections hang.\n",
        );
    }
    if !st.suppression_ok() {
        detail.push_str(
            "Without ARP suppression the node answers ARP for the VIP, so routers send clients \
             straight to it and bypass the director (the LVS-DR \"ARP problem\").\n",
        );
    }
    detail.push_str(&bad.join("\n"));
    Finding::error(
        ID,
        format!("{what} ({} item(s) not in place)", bad.len()),
        detail,
        "run `lvs-node up` (or start `lvs-node run`, which repairs drift); `lvs-node status` shows each item",
    )
}
