//! `lvs-node run` keeping the data plane converged: drift repair and stop behaviour.
//! They use the real data plane (`dataplane::converge/teardown/observe`).

mod daemon_util;

use daemon_util::*;
use lab::dr::VIP;
use lab::{gridftp, wait_for, DrLab, LabOpts};
use std::time::Duration;

fn managed_node(tag: &str, extra: &str) -> (DrLab, TestDir, std::path::PathBuf, u32) {
    let lab = DrLab::build(
        tag,
        LabOpts {
            reals: 1,
            ..LabOpts::default()
        },
    );
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            manage_dataplane: true,
            extra,
            ..NodeOpts::default()
        },
    );
    let pid = start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| {
        panic!(
            "not up: {}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        )
    });
    (lab, dir, cfg, pid)
}

fn vip_present(h: &lab::dr::Host) -> bool {
    h.ok("ip -o addr show dev lo")
        .contains(&format!("{VIP}/32"))
}

#[test]
fn deleted_vip_is_repaired_and_timed() {
    let (lab, _dir, _cfg, _pid) = managed_node("rep", "");
    let rs = &lab.reals[0];
    assert!(vip_present(rs), "agent did not put the VIP up at start");
    // Measured inside the namespace: delete, then poll until the address is back.
    let script = format!(
        "for i in $(seq 1 20); do \
           t0=$(date +%s%N); ip addr del {VIP}/32 dev lo; \
           while ! ip -o addr show dev lo | grep -q '{VIP}/32'; do :; done; \
           t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )); sleep 0.2; \
         done"
    );
    let file = _dir.join("drift.sh");
    std::fs::write(&file, script).unwrap();
    let out = rs.ok(&format!("timeout 60 sh {}", file.display()));
    let mut us: Vec<u64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(us.len(), 20, "not every deletion was repaired: {out}");
    us.sort();
    let median = us[us.len() / 2] as f64 / 1000.0;
    let max = *us.last().unwrap() as f64 / 1000.0;
    eprintln!("drift repair: median {median:.1} ms, max {max:.1} ms over 20 deletions");
    assert!(median <= 50.0, "median repair {median} ms > 50 ms");
    let metrics = lab
        .director
        .ok(&format!("curl -s http://{}:{HTTP_PORT}/metrics", rs.ip));
    let repairs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lvs_realserver_repairs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(repairs >= 20, "repairs_total {repairs} < 20:\n{metrics}");
    // After repair the node is up again.
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(3),
    )
    .expect("up after repairs");
}

#[test]
fn arp_sysctl_drift_is_repaired_on_the_recheck_interval() {
    let (lab, _dir, _cfg, _pid) = managed_node("sys", "");
    let rs = &lab.reals[0];
    rs.ok("sysctl -qw net.ipv4.conf.all.arp_ignore=0");
    let fixed = wait_for(Duration::from_secs(3), || {
        (rs.ok("sysctl -n net.ipv4.conf.all.arp_ignore").trim() == "1").then_some(())
    });
    assert!(
        fixed.is_some(),
        "arp_ignore not repaired within the 1s recheck interval"
    );
}

#[test]
fn sigterm_keeps_vips_and_on_stop_down_removes_them() {
    let (lab, dir, cfg, pid) = managed_node("stp", "");
    let rs = &lab.reals[0];
    rs.ns.signal(pid, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(rs.ns.wait(pid, Duration::from_secs(5)), Some(0));
    assert!(vip_present(rs), "default on_stop removed the VIP");

    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[daemon]\n", "[daemon]\non_stop = \"down\"\n");
    std::fs::write(&cfg, text).unwrap();
    let pid = start_agent(rs, &cfg, &dir.join("agent2.log"), HTTP_PORT);
    rs.ns.signal(pid, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        rs.ns.wait(pid, Duration::from_secs(5)),
        Some(0),
        "agent log:\n{}",
        std::fs::read_to_string(dir.join("agent2.log")).unwrap_or_default()
    );
    assert!(!vip_present(rs), "on_stop = \"down\" left the VIP");
}

#[test]
fn sighup_adds_a_vip() {
    let (lab, _dir, cfg, pid) = managed_node("hup", "");
    let rs = &lab.reals[0];
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[daemon]\n",
        "[[vip]]\naddress = \"192.0.2.101\"\nports = [2811]\n[daemon]\n",
    );
    std::fs::write(&cfg, text).unwrap();
    rs.ns.signal(pid, nix::sys::signal::Signal::SIGHUP);
    let ok = wait_for(Duration::from_secs(3), || {
        rs.ok("ip -o addr show dev lo")
            .contains("192.0.2.101/32")
            .then_some(())
    });
    assert!(ok.is_some(), "SIGHUP did not add the new VIP");
}

#[test]
fn nic_down_flush_up_is_repaired_at_once() {
    // What a network manager does when it reconfigures the NIC: link down, flush every
    // address, put back its own (the real IP), link up. The VIP on the NIC must come back
    // on the netlink events, after the real IP, not at the next recheck.
    let extra =
        "[arp]\nmethod = \"nftables\"\n[[vip]]\naddress = \"192.0.2.102\"\ndevice = \"eth0\"\n";
    let (lab, dir, cfg, pid) = managed_node("lnk", extra);
    let rs = &lab.reals[0];
    // A long recheck interval: only the events can explain a fast repair.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("recheck_interval = \"1s\"", "recheck_interval = \"30s\"");
    std::fs::write(&cfg, text).unwrap();
    rs.ns.signal(pid, nix::sys::signal::Signal::SIGHUP);
    let on_nic = || rs.ok("ip -o -4 addr show dev eth0");
    assert!(wait_for(Duration::from_secs(3), || on_nic()
        .contains("192.0.2.102/32")
        .then_some(()))
    .is_some());
    std::thread::sleep(Duration::from_millis(300)); // the reload settles
    let out = rs.ok(
        "ip link set eth0 down; ip addr flush dev eth0; ip -o -4 addr show dev eth0 | grep -c 192.0.2.102 || true; \
         s=$(date +%s%N); ip addr add 192.0.2.11/24 dev eth0; ip link set eth0 up; \
         for i in $(seq 1 400); do ip -o -4 addr show dev eth0 | grep -q 192.0.2.102 && break; sleep 0.005; done; \
         echo $(( ($(date +%s%N) - s) / 1000000 ))",
    );
    let mut lines = out.lines();
    let left = lines.next().unwrap_or("?").trim().to_string();
    let ms: u64 = lines.next().unwrap().trim().parse().unwrap();
    let a = on_nic();
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(
        a.contains("192.0.2.102/32"),
        "VIP not repaired after the NIC bounce: {a}\n{log}"
    );
    assert!(
        a.find("192.0.2.11/24").unwrap() < a.find("192.0.2.102/32").unwrap(),
        "the real IP must stay first: {a}"
    );
    assert!(ms < 1000, "repair after the bounce took {ms} ms (recheck interval is 30 s); flushed count {left}\n{log}");
    assert!(vip_present(rs), "the VIP on lo stays");
    eprintln!("NIC bounce repaired in {ms} ms");
}

#[test]
fn sighup_removes_a_vip_dropped_from_the_config() {
    let (lab, _dir, cfg, pid) = managed_node("hpr", "[[vip]]\naddress = \"192.0.2.101\"\n");
    let rs = &lab.reals[0];
    let has101 = || rs.ok("ip -o addr show dev lo").contains("192.0.2.101/32");
    assert!(wait_for(Duration::from_secs(3), || has101().then_some(())).is_some());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[[vip]]\naddress = \"192.0.2.101\"\n", "");
    std::fs::write(&cfg, text).unwrap();
    rs.ns.signal(pid, nix::sys::signal::Signal::SIGHUP);
    let gone = wait_for(Duration::from_secs(3), || (!has101()).then_some(()));
    assert!(
        gone.is_some(),
        "SIGHUP did not remove the VIP dropped from the config"
    );
    assert!(vip_present(rs), "the remaining VIP must stay");
}
