//! The ARP problem and its three fixes, checked with real arping from the client, and
//! `down` restoring the host exactly.

use lab::dr::{DrLab, Host, LabOpts, VIP};
use lab::node::{lvs_node_ok, snapshot, write_config, Workdir};

fn vip_cfg(method: &str, device: &str) -> String {
    format!("[arp]\nmethod = \"{method}\"\n[[vip]]\naddress = \"{VIP}\"\ndevice = \"{device}\"\nports = [2811]\n")
}

/// The kernel's own ARP request from a real server, as seen on the wire by the client.
fn kernel_arp_sender(lab: &DrLab, rs: &Host) -> String {
    let path = std::env::temp_dir().join(format!("{}-tcpdump.log", lab.prefix));
    let cap = lab.client.ns.spawn_logged(
        "tcpdump -l -n -i eth0 -c 1 'arp and arp[6:2] == 1 and ether src 02:00:00:00:00:0b'",
        &path,
    );
    // tcpdump says "listening on" once its capture is open; a loaded machine may take
    // longer than any fixed pause. Then the request is triggered until it is captured.
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    lab::wait_for(std::time::Duration::from_secs(10), || {
        read().contains("listening on").then_some(())
    });
    for _ in 0..5 {
        rs.ns.ok(
            "ip neigh flush dev eth0; ping -c 1 -W 1 -I 192.0.2.100 192.0.2.1 >/dev/null 2>&1 || true",
        );
        if read().contains(" tell ") {
            break;
        }
    }
    lab.client.ns.wait(cap, std::time::Duration::from_secs(5));
    let log = read();
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{}-tcpdump.log", lab.prefix)));
    log
}

#[test]
fn arp_problem_is_real_without_suppression() {
    let lab = DrLab::build("arpprob", LabOpts::default());
    for rs in &lab.reals {
        rs.ok(&format!("ip addr add {VIP}/32 dev lo"));
    }
    let macs = lab.arp_answers(&VIP.to_string());
    // Real servers answer for the VIP besides the director: the DR "ARP problem".
    for rs in &lab.reals {
        assert!(
            macs.contains(&rs.mac),
            "real server {} should answer without suppression: {macs:?}",
            rs.mac
        );
    }
    // And the kernel's own ARP leaves with the VIP as sender ("tell VIP") poisoning caches.
    let log = kernel_arp_sender(&lab, &lab.reals[0]);
    assert!(
        log.contains("tell 192.0.2.100"),
        "expected tell VIP, got: {log}"
    );
}

fn method_hides_vip(method: &str, device: &str) {
    let lab = DrLab::build(&format!("arp{method}"), LabOpts::default());
    let work = Workdir::new(&lab.prefix);
    let before: Vec<String> = lab.reals.iter().map(snapshot).collect();
    let mut cfgs = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        let cfg = write_config(&work, rs, &format!("rs{i}"), &vip_cfg(method, device));
        let out = lvs_node_ok(rs, &cfg, "up");
        assert!(out.contains("up: done"), "{out}");
        cfgs.push(cfg);
    }
    let macs = lab.arp_answers(&VIP.to_string());
    assert_eq!(
        macs,
        vec![lab.director.mac.clone()],
        "only the director may answer for the VIP ({method})"
    );
    // The kernel's own ARP from a real server names the real IP, never the VIP.
    let log = kernel_arp_sender(&lab, &lab.reals[0]);
    assert!(
        log.contains("tell 192.0.2.11"),
        "expected tell RIP with {method}, got: {log}"
    );
    assert!(!log.contains("tell 192.0.2.100"), "{log}");
    // Status is converged.
    for (rs, cfg) in lab.reals.iter().zip(&cfgs) {
        let st = lvs_node_ok(rs, cfg, "status");
        assert!(st.contains("converged"), "{st}");
    }
    // down restores every real server exactly.
    for ((rs, cfg), snap) in lab.reals.iter().zip(&cfgs).zip(&before) {
        let out = lvs_node_ok(rs, cfg, "down");
        assert!(out.contains("down: done"), "{out}");
        assert_eq!(
            &snapshot(rs),
            snap,
            "host not restored exactly after down ({method})"
        );
    }
}

#[test]
fn sysctl_method_hides_vip_on_lo() {
    method_hides_vip("sysctl", "lo");
}

#[test]
fn arptables_method_hides_vip_on_lo() {
    method_hides_vip("arptables", "lo");
}

#[test]
fn arptables_method_hides_vip_on_nic() {
    method_hides_vip("arptables", "eth0");
}

#[test]
fn nftables_method_hides_vip_on_lo() {
    method_hides_vip("nftables", "lo");
}

#[test]
fn nftables_method_hides_vip_on_nic() {
    method_hides_vip("nftables", "eth0");
}
