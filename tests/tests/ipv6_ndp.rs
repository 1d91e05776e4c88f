//! An IPv6 VIP on lo is never announced: the node does not answer neighbour solicitations
//! for it (the kernel answers NDP only for addresses on the receiving interface), so only
//! the director's MAC answers for the VIP. The same capture sees a node that holds the VIP
//! on its NIC, which shows the check can fail.

use lab::dr::VIP6;
use lab::node::{lvs_node_ok, write_config, Workdir};
use lab::{DrLab, LabOpts};

/// The source MACs of every neighbour advertisement for VIP6 the client saw.
fn na_sources(lab: &DrLab, work: &Workdir, tag: &str) -> Vec<String> {
    let cap = work.path().join(format!("na-{tag}.txt"));
    lab::dr::na_sources(&lab.client.ns, &cap, VIP6)
}

#[test]
fn a_node_never_answers_neighbour_solicitations_for_a_vip_on_lo() {
    let lab = DrLab::build(
        "ndp",
        LabOpts {
            reals: 2,
            ipv6: true,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let cfg = write_config(&work, rs, "rs", &format!("[[vip]]\naddress = \"{VIP6}\"\n"));
    lvs_node_ok(rs, &cfg, "up");
    assert!(rs.ok("ip -6 addr show dev lo").contains(VIP6));
    let seen = na_sources(&lab, &work, "lo");
    assert_eq!(
        seen,
        vec![lab.director.mac.clone()],
        "only the director may answer for {VIP6}; node MAC {}",
        rs.mac
    );
    // A node with the VIP on its NIC (what the config refuses) answers: the capture sees it.
    let bad = &lab.reals[1];
    bad.ok(&format!("ip -6 addr add {VIP6}/128 dev eth0 nodad"));
    let seen = na_sources(&lab, &work, "nic");
    assert!(
        seen.contains(&bad.mac),
        "the capture must see a node that answers: {seen:?}"
    );
    assert!(!seen.contains(&rs.mac), "{seen:?}");
    lvs_node_ok(rs, &cfg, "down");
}
