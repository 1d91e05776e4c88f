//! `down` restores a host that was not empty before `up`: an admin's own arptables rules
//! and nftables tables, a rule identical to ours, non-zero ARP sysctls, a stricter
//! arp_ignore, a VIP present before the first `up` (a node migrated from the manual
//! procedure), a prefix change, and a damaged state file. Each compares the whole snapshot
//! (addresses, ARP sysctls, arptables-save, nft list ruleset) before `up` and after `down`.

use lab::dr::{DrLab, Host, LabOpts, VIP};
use lab::node::{lvs_node, lvs_node_ok, snapshot, write_config, Workdir};

fn one_real(tag: &str) -> DrLab {
    DrLab::build(
        tag,
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    )
}

fn cfg(method: &str, device: &str) -> String {
    format!("[arp]\nmethod = \"{method}\"\n[[vip]]\naddress = \"{VIP}\"\ndevice = \"{device}\"\n")
}

/// up, status converged, down: the host is byte-identical to `before`.
fn up_down_restores(rs: &Host, work: &Workdir, name: &str, body: &str) {
    let before = snapshot(rs);
    let c = write_config(work, rs, name, body);
    lvs_node_ok(rs, &c, "up");
    assert_eq!(
        lvs_node(rs, &c, "status").status.code(),
        Some(0),
        "{name}: not converged after up:\n{}",
        String::from_utf8_lossy(&lvs_node(rs, &c, "status").stdout)
    );
    lvs_node_ok(rs, &c, "down");
    assert_eq!(
        snapshot(rs),
        before,
        "{name}: down did not restore the host"
    );
}

#[test]
fn admin_rules_and_tables_present_before_up_are_kept_exactly() {
    let lab = one_real("rstadm");
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    // An admin's own ARP rules (another address, another interface option) and nftables
    // tables of their own, in the arp and inet families.
    rs.ok("arptables -A INPUT -d 192.0.2.200 -j DROP");
    rs.ok("arptables -A OUTPUT -o eth0 -s 192.0.2.201 -j mangle --mangle-ip-s 192.0.2.11");
    let nft = work.path().join("admin.nft");
    std::fs::write(
        &nft,
        "table inet admin {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp dport 2811 counter accept\n }\n}\n\
         table arp adminarp {\n chain in {\n  type filter hook input priority 10; policy accept;\n  arp daddr ip 192.0.2.202 drop\n }\n}\n",
    )
    .unwrap();
    rs.ok(&format!("nft -f {}", nft.display()));
    for method in ["arptables", "nftables", "sysctl"] {
        up_down_restores(rs, &work, method, &cfg(method, "lo"));
    }
    let rules = rs.ok("arptables-save");
    assert!(
        rules.contains("192.0.2.200") && rules.contains("192.0.2.201"),
        "{rules}"
    );
}

#[test]
fn a_rule_identical_to_ours_that_was_there_stays() {
    let lab = one_real("rstsame");
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    rs.ok(&format!("arptables -A INPUT -d {VIP} -j DROP"));
    rs.ok(&format!(
        "arptables -A OUTPUT -s {VIP} -j mangle --mangle-ip-s 192.0.2.11"
    ));
    let c = write_config(&work, rs, "rs", &cfg("arptables", "lo"));
    let plan = lvs_node_ok(rs, &c, "up --dry-run");
    assert!(
        !plan.contains("arptables -A"),
        "adds a rule that is there: {plan}"
    );
    up_down_restores(rs, &work, "rs", &cfg("arptables", "lo"));
    let rules = rs.ok("arptables -L -n");
    assert_eq!(rules.matches("--mangle-ip-s").count(), 1, "{rules}");
    assert_eq!(rules.matches("-j DROP").count(), 1, "{rules}");
}

#[test]
fn nonzero_starting_sysctls_are_written_back() {
    let lab = one_real("rstsys");
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    rs.ok("sysctl -qw net.ipv4.conf.all.arp_announce=1 net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=1");
    up_down_restores(rs, &work, "rs", &cfg("sysctl", "lo"));
    assert_eq!(
        rs.ok("sysctl -n net.ipv4.conf.all.arp_announce net.ipv4.conf.eth0.arp_ignore net.ipv4.conf.eth0.arp_announce"),
        "1\n1\n1\n"
    );
}

#[test]
fn a_stricter_arp_ignore_is_left_alone() {
    let lab = one_real("rststr");
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    for strict in ["2", "3", "8"] {
        rs.ok(&format!(
            "sysctl -qw net.ipv4.conf.all.arp_ignore={strict} net.ipv4.conf.eth0.arp_ignore={strict}"
        ));
        let before = snapshot(rs);
        let c = write_config(&work, rs, &format!("s{strict}"), &cfg("sysctl", "lo"));
        let out = lvs_node_ok(rs, &c, "up");
        assert!(
            !out.contains("arp_ignore"),
            "{strict}: touched arp_ignore: {out}"
        );
        assert_eq!(
            rs.ok("sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.eth0.arp_ignore"),
            format!("{strict}\n{strict}\n")
        );
        assert_eq!(lvs_node(rs, &c, "status").status.code(), Some(0));
        lvs_node_ok(rs, &c, "down");
        assert_eq!(snapshot(rs), before, "arp_ignore={strict}");
    }
}

/// A node configured by hand has the VIP before the first `up`. `down` removes it with
/// the suppression: never the VIP without suppression (the node would answer ARP for the
/// pool's address).
#[test]
fn a_vip_present_before_the_first_up_goes_with_down() {
    let lab = one_real("rstmig");
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let before = snapshot(rs);
    rs.ok(&format!("ip addr add {VIP}/32 dev lo"));
    let c = write_config(&work, rs, "rs", &cfg("sysctl", "lo"));
    lvs_node_ok(rs, &c, "up");
    lvs_node_ok(rs, &c, "down");
    let lo = rs.ok("ip -o addr show dev lo");
    assert!(
        !lo.contains(&format!("{VIP}/32")),
        "down left the adopted VIP while it restored arp_ignore/arp_announce (ARP flux): {lo}"
    );
    assert_eq!(snapshot(rs), before);
}

/// The VIP on the NIC changes from /32 to /24: the new form is ours too, and `down`
/// removes it.
#[test]
fn a_prefix_change_keeps_ownership() {
    let lab = one_real("rstpfx");
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let before = snapshot(rs);
    let v = "192.0.2.102";
    let body = |p: u8| {
        format!("[arp]\nmethod = \"nftables\"\n[[vip]]\naddress = \"{v}/{p}\"\ndevice = \"eth0\"\n")
    };
    let c = write_config(&work, rs, "rs", &body(32));
    lvs_node_ok(rs, &c, "up");
    let c = write_config(&work, rs, "rs", &body(24));
    lvs_node_ok(rs, &c, "up");
    let a = rs.ok("ip -o -4 addr show dev eth0");
    assert!(
        a.contains(&format!("{v}/24")) && !a.contains(&format!("{v}/32")),
        "{a}"
    );
    assert_eq!(lvs_node(rs, &c, "status").status.code(), Some(0));
    lvs_node_ok(rs, &c, "down");
    assert_eq!(
        snapshot(rs),
        before,
        "down after a prefix change left the /24"
    );
}

/// A damaged or edited state file is refused before anything changes: a sysctl key that
/// is not an ARP sysctl, and the node's own address recorded as a VIP.
#[test]
fn a_damaged_state_file_is_refused_and_nothing_changes() {
    let lab = one_real("rststate");
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let c = write_config(&work, rs, "rs", &cfg("sysctl", "lo"));
    let state = work.path().join("rs-state");
    std::fs::create_dir_all(&state).unwrap();
    let forward = rs.ok("sysctl -n net.ipv4.ip_forward");
    let before = snapshot(rs);
    for (json, key) in [
        (
            r#"{"version":1,"sysctl_orig":{"net/ipv4/ip_forward":"1"}}"#,
            "sysctl_orig",
        ),
        (
            r#"{"version":1,"vips":[{"address":"192.0.2.11","prefix":24,"device":"eth0","ports":[],"hostname":null}]}"#,
            "vips[0]",
        ),
    ] {
        std::fs::write(state.join("state.json"), json).unwrap();
        for cmd in ["down", "up"] {
            let out = lvs_node(rs, &c, cmd);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} with {json}: {err}");
            assert!(err.contains("state.json") && err.contains(key), "{err}");
            assert_eq!(snapshot(rs), before, "{cmd} with {json} changed the host");
            assert_eq!(rs.ok("sysctl -n net.ipv4.ip_forward"), forward);
        }
    }
}
