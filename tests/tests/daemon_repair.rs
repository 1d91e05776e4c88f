//! `lvs-node run` keeping the data plane converged: drift repair and stop behaviour.
//! They use the real data plane (`dataplane::converge/teardown/observe`).

mod daemon_util;

use daemon_util::*;
use lab::dr::VIP;
use lab::{gridftp, wait_for, DrLab};
use std::time::Duration;

fn managed_node(
    tag: &str,
    extra: &str,
    recheck: &str,
) -> (DrLab, TestDir, std::path::PathBuf, u32) {
    let lab = DrLab::one_real(tag);
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            manage_dataplane: true,
            extra,
            recheck,
            ..NodeOpts::default()
        },
    );
    let pid = start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        // Not what is measured: generous for a loaded machine.
        Duration::from_secs(20),
    )
    .unwrap_or_else(|| {
        panic!(
            "not up: {}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        )
    });
    (lab, dir, cfg, pid)
}

/// The agent's log without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

fn vip_present(h: &lab::dr::Host) -> bool {
    h.ok("ip -o addr show dev lo")
        .contains(&format!("{VIP}/32"))
}

/// The repair comes from the netlink event: the recheck is an hour away, so 20 deletions
/// repaired within the script's 60 s can only be the event's doing. How fast is the
/// benchmark's question (tests/bench/daemon.sh, docs/benchmarks.md); the times are printed.
#[test]
fn deleted_vip_is_repaired_on_the_netlink_event() {
    let (lab, _dir, _cfg, _pid) = managed_node("rep", "", "1h");
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
    // A sysctl change sends no netlink event: only the recheck (every 1 s here) sees it.
    // Timed inside the namespace, 5 times: each repair lands within one interval plus the
    // converge run (slack for a loaded machine), never at a later recheck.
    let (lab, dir, _cfg, _pid) = managed_node("sys", "", "1s");
    let rs = &lab.reals[0];
    let script = "for i in 1 2 3 4 5; do \
           t0=$(date +%s%N); sysctl -qw net.ipv4.conf.all.arp_ignore=0; \
           while [ \"$(cat /proc/sys/net/ipv4/conf/all/arp_ignore)\" != 1 ]; do \
             [ $(( ($(date +%s%N) - t0) / 1000000 )) -gt 5000 ] && break; sleep 0.01; done; \
           echo $(( ($(date +%s%N) - t0) / 1000000 )); sleep 0.3; \
         done";
    let file = dir.join("sysdrift.sh");
    std::fs::write(&file, script).unwrap();
    let out = rs.ok(&format!("timeout 60 sh {}", file.display()));
    let ms: Vec<u64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(ms.len(), 5, "{out}");
    let mut sorted = ms.clone();
    sorted.sort();
    let (median, max) = (sorted[2], sorted[4]);
    eprintln!("arp_ignore drift repaired after {ms:?} ms (recheck_interval 1s)");
    assert!(
        median <= 1200 && max <= 1900,
        "arp_ignore repaired after {ms:?} ms: not within the 1 s recheck interval \
         (median <= 1.2 s, max <= 1.9 s allowed for the run on a loaded machine)"
    );
}

#[test]
fn sigterm_keeps_vips_and_on_stop_down_removes_them() {
    let (lab, dir, cfg, pid) = managed_node("stp", "", "1s");
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
    let (lab, _dir, cfg, pid) = managed_node("hup", "", "1s");
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
    let (lab, dir, cfg, pid) = managed_node("lnk", extra, "1s");
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
    // The log says which trigger repaired it: after the reload, only netlink events
    // (`trigger="event"`) may have repaired anything; a recheck or a reload would mean
    // the timing above proves nothing about the event path.
    let plain = strip_ansi(&log);
    let after_reload = plain
        .rsplit_once("config reloaded")
        .map(|x| x.1)
        .unwrap_or("");
    let repairs: Vec<&str> = after_reload
        .lines()
        .filter(|l| l.contains("repaired the data plane"))
        .collect();
    assert!(
        !repairs.is_empty() && repairs.iter().all(|l| l.contains("trigger=\"event\"")),
        "the bounce must be repaired by netlink events only:\n{}",
        repairs.join("\n")
    );
    assert!(
        repairs.iter().any(|l| l.contains("192.0.2.102")),
        "no event repair put back 192.0.2.102:\n{}",
        repairs.join("\n")
    );
    eprintln!("NIC bounce repaired in {ms} ms");
}

#[test]
fn sighup_removes_a_vip_dropped_from_the_config() {
    let (lab, _dir, cfg, pid) = managed_node("hpr", "[[vip]]\naddress = \"192.0.2.101\"\n", "1s");
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

/// `lvs-node down` while the agent runs would be undone at once by its repair: `down`
/// refuses with the command to run, and works once the agent is stopped.
#[test]
fn down_refuses_while_the_agent_runs() {
    let (lab, _dir, cfg, pid) = managed_node("dwn", "", "1s");
    let rs = &lab.reals[0];
    let out = lvs(&rs.ns, &cfg, "down");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "down while the agent runs: {err}"
    );
    assert!(err.contains("systemctl stop lvs-node"), "{err}");
    assert!(vip_present(rs), "a refused down changed the host");
    rs.ns.signal(pid, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(rs.ns.wait(pid, Duration::from_secs(5)), Some(0));
    let out = lvs(&rs.ns, &cfg, "down");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!vip_present(rs), "the VIP came back after down");
}

/// A second agent on the same host refuses to start and leaves the first one's control
/// socket alone.
#[test]
fn a_second_agent_refuses_to_start() {
    let (lab, dir, cfg, _pid) = managed_node("two", "", "1s");
    let rs = &lab.reals[0];
    // Same control socket and state, other report ports: only the socket can stop it.
    let cfg2 = dir.join("second.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&format!(":{HTTP_PORT}"), ":8090")
        .replace(&format!(":{AGENT_PORT}"), ":8091");
    std::fs::write(&cfg2, text).unwrap();
    let log = dir.join("second.log");
    let pid2 = rs.ns.spawn_logged(
        &format!(
            "{} -c {} run",
            lab::bins::lvs_node().display(),
            cfg2.display()
        ),
        &log,
    );
    let code = rs.ns.wait(pid2, Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(1), "second agent: {text}");
    assert!(text.contains("another lvs-node agent"), "{text}");
    let st = lvs(&rs.ns, &cfg, "drain");
    assert!(
        st.status.success(),
        "the first agent's control socket is gone: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// A damaged admin.json (the persisted drain/maint state) fails closed: the agent starts
/// in maintenance, never back in rotation.
#[test]
fn an_unreadable_admin_state_starts_in_maintenance() {
    let lab = DrLab::one_real("adm");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            manage_dataplane: true,
            ..NodeOpts::default()
        },
    );
    std::fs::create_dir_all(dir.join("rs0/state")).unwrap();
    std::fs::write(dir.join("rs0/state/admin.json"), b"{\"admin\": \"mai").unwrap();
    start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    // Give the checks time to rise: a ready node would turn 200 within a second.
    std::thread::sleep(Duration::from_secs(3));
    let (code, body) = health(&lab.director.ns, rs.ip, HTTP_PORT);
    assert_eq!(code, 503, "damaged admin.json put the node back: {body}");
    let line = agent_line(&lab.director.ns, rs.ip);
    assert!(line.contains("maint"), "agent-check: {line}");
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(log.contains("UNREADABLE ADMIN STATE"), "{log}");
}
