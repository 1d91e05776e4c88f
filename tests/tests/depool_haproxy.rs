//! `[pool] depool_threshold` under a real HAProxy director (agent-check), the other director
//! the agent reports to besides keepalived (tests/tests/depool.rs has the IPVS one).
//!
//! Two nodes share one dependency: a `shared` command check fails on both at once when the
//! one flag file they both watch appears (what an NFS outage does to every node's
//! filesystem check). With `depool_threshold = 0.5` one node must keep serving: the first by
//! URL is held, answers `up ready 100%` on its agent port, and HAProxy keeps it UP; the
//! other answers `down` and HAProxy takes it out. At no sample does HAProxy have both out.
//! When the flag goes, both are UP again.

mod daemon_util;

use daemon_util::*;
use lab::dr::{DrLab, Host, LabOpts, VIP};
use lab::haproxy::{Haproxy, Server};
use std::path::Path;
use std::time::{Duration, Instant};

fn node(lab: &DrLab, rs: &Host, dir: &Path, flag: &Path) -> std::path::PathBuf {
    let (peers, allow) = pool_lists(&lab.reals);
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{VIP}\"\nports = [2811]\n\
             [daemon]\nmanage_dataplane = false\ncontrol_socket = \"{d}/control.sock\"\n\
             [report]\nhttp = \"{ip}:{HTTP_PORT}\"\nagent_check = \"{ip}:{AGENT_PORT}\"\nallow = [{allow}]\n\
             [[check]]\nname = \"nfs\"\nkind = \"command\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1\nshared = true\n\
             command = [\"/bin/sh\", \"-c\", \"test ! -e {f} || {{ echo 'nfs: stale file handle'; exit 2; }}\"]\n\
             [pool]\npeers = [{p}]\ninterval = \"500ms\"\ntimeout = \"400ms\"\ndepool_threshold = 0.5\n",
            ip = rs.ip,
            d = dir.display(),
            f = flag.display(),
            allow = allow,
            p = peers,
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn a_shared_failure_keeps_the_held_node_up_in_haproxy() {
    let lab = DrLab::build(
        "dphap",
        LabOpts {
            reals: 2,
            ..Default::default()
        },
    );
    let dir = TestDir::new(&lab.prefix);
    let flag = dir.join("nfs-down");
    let d = &lab.director.ns;
    let mut servers = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        prepare_real_by_hand(rs);
        let cfg = node(&lab, rs, &dir.join(&format!("rs{i}")), &flag);
        let log = dir.join(&format!("rs{i}.log"));
        rs.ns.spawn_logged(
            &format!(
                "{} -c {} -v run",
                lab::bins::lvs_node().display(),
                cfg.display()
            ),
            &log,
        );
        wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(15)).unwrap_or_else(|| {
            panic!(
                "rs{i} not up: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        // HAProxy's own TCP check goes to the agent's report port: no storage server is
        // needed for what is under test, the agent's answer.
        servers.push(Server {
            name: format!("rs{i}"),
            addr: format!("{}:{HTTP_PORT}", rs.ip),
            agent_addr: rs.ip.to_string(),
            agent_port: AGENT_PORT,
        });
    }
    let hap = Haproxy::start(d, &dir.join("haproxy"), &servers);
    let t = Duration::from_secs(10);
    for s in ["rs0", "rs1"] {
        hap.wait_server(d, s, "UP", Some(100), t).unwrap();
    }
    let logs = || {
        (0..2)
            .map(|i| {
                format!(
                    "rs{i}:\n{}",
                    std::fs::read_to_string(dir.join(&format!("rs{i}.log"))).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // The shared dependency fails on both nodes at once. Sample HAProxy until it settles
    // and a while after: one server UP at every sample.
    std::fs::write(&flag, "").unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < Duration::from_secs(6) {
        let a = hap.server(d, "rs0");
        let b = hap.server(d, "rs1");
        let up = |s: &Option<(String, u32)>| s.as_ref().is_some_and(|(st, _)| st.starts_with("UP"));
        assert!(
            up(&a) || up(&b),
            "HAProxy had no server UP {:?} after the shared failure: rs0 {a:?}, rs1 {b:?}\nsamples: {seen:?}\n{}",
            start.elapsed(),
            logs()
        );
        seen.push((start.elapsed().as_millis(), a, b));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Settled: the first node by URL is held and serving, the other is out.
    let (held, out) = if lab.reals[0].ip.to_string() < lab.reals[1].ip.to_string() {
        (0, 1)
    } else {
        (1, 0)
    };
    hap.wait_server(d, &format!("rs{held}"), "UP", Some(100), t)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    hap.wait_server(d, &format!("rs{out}"), "DOWN", None, t)
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    assert_eq!(agent_line(d, lab.reals[held].ip), "up ready 100%");
    assert!(
        agent_line(d, lab.reals[out].ip).starts_with("down ready #nfs"),
        "{}",
        agent_line(d, lab.reals[out].ip)
    );
    let (code, line) = health(d, lab.reals[held].ip, HTTP_PORT);
    assert_eq!(code, 200, "{line}");
    assert!(line.contains("held=1"), "{line}");

    // The dependency is back: both serve again.
    std::fs::remove_file(&flag).unwrap();
    for s in ["rs0", "rs1"] {
        hap.wait_server(d, s, "UP", Some(100), t)
            .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    }
}
