//! BFD between `lvs-node run` and the REAL director: a qemu guest with IPVS and keepalived
//! (tests/src/vm.rs) loaded with `lvs-node director-config --pool URL --bfd --bfd-source IP`
//! exactly as printed. One guest boot covers the whole life of a node: up, drained with a
//! transfer running, GridFTP killed, the agent SIGKILLed and stopped, each recovery, and
//! last forged BFD packets (from a stranger, from the director's address with TTL 254, or
//! from the director's address with TTL 255 but without the session's discriminator)
//! leaving it in rotation while a packet from the director with TTL 255 and the
//! discriminator read off the wire takes it out. Every assertion
//! about the director reads `ipvsadm -Ln` inside the guest and keepalived's own log.
//!
//! A guest that cannot boot fails the test with the reason and its console (never a skip).

mod daemon_util;

use daemon_util::*;
use lab::dr::{IpvsLab, CLIENT_IP, DIRECTOR_IP, VIP};
use lab::vm::director::{tail, Real};
use lab::{bins, gridftp, wait_for};
use std::process::Command;
use std::time::{Duration, Instant};

fn weight(w: u32) -> impl Fn(Option<&Real>) -> bool {
    move |r| r.is_some_and(|r| r.weight == w)
}

/// A BFD session state from the agent's /metrics (3 up, 0 admin_down), as the client sees it.
fn bfd_state(lab: &IpvsLab, rs: usize) -> Option<i64> {
    metric(
        &lab.client.ns,
        lab.reals[rs].ip,
        &format!("lvs_realserver_bfd_session_state{{director=\"{DIRECTOR_IP}\"}}"),
    )
    .map(|v| v as i64)
}

#[test]
fn bfd_check_follows_gridftp_drain_and_agent_kill_on_the_real_director() {
    let lab = IpvsLab::build("bfdvm", 1)
        .unwrap_or_else(|e| panic!("the real director guest did not come up: {e:#}"));
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let sub = dir.join("rs0");
    std::fs::create_dir_all(&sub).unwrap();
    let mut gft = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &sub.join("gridftp.log"));
    let text = node_toml(
        rs,
        &sub,
        &NodeOpts {
            manage_dataplane: true,
            // The director reads /health; the admin's host (the client) /status and /metrics;
            // the node itself its /health (start_agent).
            report_extra: &format!("allow = [\"{DIRECTOR_IP}\", \"{CLIENT_IP}\", \"{}\"]", rs.ip),
            extra: &format!(
                "[bfd]\ndirectors = [\"{DIRECTOR_IP}\"]\nmin_tx = \"100ms\"\nmin_rx = \"100ms\"\nmultiplier = 3\n"
            ),
            ..NodeOpts::default()
        },
    );
    let cfg = sub.join("node.toml");
    std::fs::write(&cfg, text).unwrap();
    let agent_log = sub.join("agent.log");
    let mut agent = start_agent(rs, &cfg, &agent_log, HTTP_PORT);
    let ok = wait_for(Duration::from_secs(10), || {
        rs.ns
            .ok("ip -o addr show dev lo")
            .contains(&format!("{VIP}/32"))
            .then_some(())
    });
    assert!(ok.is_some(), "lvs-node run did not put {VIP} on lo");

    // The director's whole config, as printed, checked by the host's keepalived and loaded.
    // Run where the director's admin would: on the lab network (the client's namespace).
    let out = lab.client.ns.run(&format!(
        "{} director-config --pool http://{}:{HTTP_PORT} --bfd --bfd-source {DIRECTOR_IP}",
        bins::lvs_node().display(),
        rs.ip
    ));
    assert!(
        out.status.success(),
        "director-config --bfd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = String::from_utf8(out.stdout).unwrap();
    assert!(
        conf.contains("bfd_instance") && conf.contains("BFD_CHECK") && conf.contains("HTTP_GET"),
        "{conf}"
    );
    assert!(conf.contains("inhibit_on_failure"), "{conf}");
    let f = dir.join("keepalived.conf");
    std::fs::write(&f, &conf).unwrap();
    let t = Command::new("keepalived")
        .args(["-t", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "keepalived -t rejected:\n{conf}\n{}",
        String::from_utf8_lossy(&t.stderr)
    );
    let d = &lab.director;
    d.load_keepalived(&conf).unwrap_or_else(|e| panic!("{e:#}"));
    let addr = format!("{}:2811", rs.ip);
    let wait = |what: &str, timeout: Duration, pred: &dyn Fn(Option<&Real>) -> bool| {
        d.wait_real(&addr, timeout, pred).unwrap_or_else(|e| {
            panic!(
                "want {what}; {e}\nagent log:\n{}",
                tail(&std::fs::read_to_string(&agent_log).unwrap_or_default(), 15)
            )
        })
    };
    wait(
        "weight 100 with BFD up",
        Duration::from_secs(60),
        &weight(100),
    );
    let wait_bfd_up = |which: &str, log: &std::path::Path| {
        let up = wait_for(Duration::from_secs(30), || {
            (bfd_state(&lab, 0) == Some(3)).then_some(())
        });
        assert!(
            up.is_some(),
            "the {which} agent's BFD session did not come Up ({:?})\nkeepalived log:\n{}\nagent log:\n{}",
            bfd_state(&lab, 0),
            tail(&d.keepalived_log(), 30),
            tail(&std::fs::read_to_string(log).unwrap_or_default(), 15)
        );
    };
    wait_bfd_up("first", &agent_log);
    let bfd_ups = |log: &str| log.matches("is UP").count();
    // keepalived's BFD_CHECK taking the node out: "BFD check of [NAME] RS(...) is DOWN".
    let bfd_downs = || {
        d.keepalived_log()
            .lines()
            .filter(|l| l.contains("BFD check of [") && l.ends_with("is DOWN"))
            .count()
    };
    let assert_bfd_down = |before: usize, what: &str| {
        let seen = wait_for(Duration::from_secs(10), || {
            (bfd_downs() > before).then_some(())
        });
        assert!(
            seen.is_some(),
            "{what}: keepalived's BFD_CHECK did not report the node DOWN (HTTP_GET alone took it out?):\n{}",
            tail(&d.keepalived_log(), 25)
        );
    };

    // Drain with a running (throttled) transfer: BFD AdminDown takes the node to weight 0
    // (inhibit_on_failure), the transfer stays in ActiveConn and finishes intact.
    // Only the transfer is throttled (2 Mbit/s, a queue of about 180 ms): BFD (UDP 3784)
    // goes around it in a class of its own. Queued behind the data it could miss the
    // director's 300 ms detection time, and keepalived would take the node out before the
    // drain. (htb: this kernel has no prio qdisc.)
    rs.ok("tc qdisc add dev eth0 root handle 1: htb default 20 && \
         tc class add dev eth0 parent 1: classid 1:10 htb rate 100mbit prio 0 && \
         tc class add dev eth0 parent 1: classid 1:20 htb rate 2mbit burst 32k prio 1 && \
         tc qdisc add dev eth0 parent 1:20 handle 20: pfifo limit 30 && \
         tc filter add dev eth0 parent 1: protocol ip u32 match ip protocol 17 0xff \
            match ip dport 3784 0xffff flowid 1:10");
    let (file, sum) = gridftp::make_file(&dir.join("data"), "big.bin", 8 << 20);
    let copied = dir.join("drained.bin");
    let copy = lab.client.ns.spawn_logged(
        &format!(
            "timeout 120 {}",
            gridftp::url_copy_cmd(&VIP.to_string(), &file, &copied)
        ),
        &dir.join("copy.log"),
    );
    wait(
        "the transfer's control connection in ActiveConn",
        Duration::from_secs(40),
        &|r| r.is_some_and(|r| r.active >= 1),
    );
    let downs = bfd_downs();
    let o = lvs(&rs.ns, &cfg, "drain --reason bfd-lab");
    assert!(
        o.status.success(),
        "drain: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = wait("weight 0 after drain", Duration::from_secs(20), &weight(0)).unwrap();
    assert!(
        r.active >= 1,
        "the running transfer left ActiveConn when the node was drained:\n{}",
        d.ipvsadm_ln()
    );
    assert_eq!(
        bfd_state(&lab, 0),
        Some(0),
        "drained: the session must be AdminDown"
    );
    assert_bfd_down(downs, "drain");
    assert_eq!(
        lab.client.ns.wait(copy, Duration::from_secs(120)),
        Some(0),
        "the transfer running during drain failed: {}",
        std::fs::read_to_string(dir.join("copy.log")).unwrap_or_default()
    );
    assert_eq!(
        gridftp::sha256(&copied),
        sum,
        "the drained transfer is not intact"
    );
    rs.ok("tc qdisc del dev eth0 root");
    let ups = bfd_ups(&d.keepalived_log());
    let o = lvs(&rs.ns, &cfg, "resume");
    assert!(
        o.status.success(),
        "resume: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    wait(
        "weight 100 after resume",
        Duration::from_secs(30),
        &weight(100),
    );
    assert!(
        bfd_ups(&d.keepalived_log()) > ups,
        "keepalived did not log the BFD check UP again after resume:\n{}",
        tail(&d.keepalived_log(), 20)
    );

    // GridFTP killed: the agent's check fails, the session goes AdminDown at once.
    let downs = bfd_downs();
    rs.ns.kill(gft);
    wait(
        "weight 0 after GridFTP was killed",
        Duration::from_secs(20),
        &weight(0),
    );
    assert_eq!(bfd_state(&lab, 0), Some(0));
    assert_bfd_down(downs, "GridFTP killed");
    gft = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &sub.join("gridftp2.log"));
    wait(
        "weight 100 after GridFTP restarted",
        Duration::from_secs(30),
        &weight(100),
    );

    // The agent SIGKILLed: no AdminDown is sent, so only the director's detection time
    // (3 x 100 ms) can end the session. keepalived names that cause in its log. Which of
    // BFD_CHECK and HTTP_GET (which fails at its retry, 1 s after the first refused
    // connection) takes the node out first is a matter of speed, and speed belongs to the
    // benchmark: on a loaded machine the emulated guest can read the last packets late.
    let before = d.keepalived_log().len();
    let downs = bfd_downs();
    let t0 = Instant::now();
    rs.ns.kill(agent);
    wait(
        "weight 0 after the agent was SIGKILLed",
        Duration::from_secs(20),
        &weight(0),
    );
    let took = t0.elapsed();
    let expired = format!(
        "(lvs-{}) Entering Down state (Local diagnostic - Control Detection Time Expired",
        rs.ip.to_string().replace('.', "-")
    );
    let seen = wait_for(Duration::from_secs(10), || {
        let log = d.keepalived_log();
        log[before.min(log.len())..]
            .contains(&expired)
            .then_some(())
    });
    assert!(
        seen.is_some(),
        "keepalived did not log the BFD detection time expiring after the agent was \
         SIGKILLed (out of rotation after {took:?}):\n{}",
        tail(&d.keepalived_log(), 25)
    );
    assert_bfd_down(downs, "agent SIGKILLed");

    // Recovery: a new agent brings the session and the weight back.
    agent = start_agent(rs, &cfg, &sub.join("agent2.log"), HTTP_PORT);
    wait(
        "weight 100 after the agent restarted",
        Duration::from_secs(30),
        &weight(100),
    );
    assert_eq!(bfd_state(&lab, 0), Some(3));
    // SIGTERM: AdminDown before exit, so the director inhibits the node at once.
    let downs = bfd_downs();
    rs.ns.signal(agent, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(rs.ns.wait(agent, Duration::from_secs(10)), Some(0));
    wait(
        "weight 0 after the agent stopped (SIGTERM)",
        Duration::from_secs(20),
        &weight(0),
    );
    assert_bfd_down(downs, "agent stopped with SIGTERM");

    // Last, as it ends with the session torn down and rebuilt by a packet from outside the
    // agent: a fresh agent, Up again.
    let agent3_log = sub.join("agent3.log");
    let _agent = start_agent(rs, &cfg, &agent3_log, HTTP_PORT);
    wait(
        "weight 100 before the forged packets",
        Duration::from_secs(30),
        &weight(100),
    );
    wait_bfd_up("third", &agent3_log);
    // Past keepalived's own switch to the fast rate (its Poll Sequence after Up), so what
    // follows starts from a settled session.
    std::thread::sleep(Duration::from_secs(3));
    wait(
        "weight 100 with the session settled",
        Duration::from_secs(30),
        &weight(100),
    );
    // Forged packets change nothing at the director: an AdminDown from the client (not a
    // configured director), one sent by the guest itself from the director's address
    // with TTL 254 (as if routed), and one from there with TTL 255 but Your Discriminator
    // zero (a forger who has not seen the session) are dropped and counted; the node stays
    // at weight 100.
    let rejected = |r: &str| {
        metric(
            &lab.client.ns,
            rs.ip,
            &format!("lvs_realserver_bfd_rejected_packets_total{{reason=\"{r}\"}}"),
        )
        .unwrap_or(0.0)
    };
    // The zero-discriminator forgery is dropped only while the agent's session is Up (a
    // session in Down or Init takes it, per RFC 5880 6.8.6): start from Up.
    let up = wait_for(Duration::from_secs(10), || {
        (bfd_state(&lab, 0) == Some(3)).then_some(())
    });
    assert!(
        up.is_some(),
        "the agent's session is not Up before the forgeries: {:?}",
        bfd_state(&lab, 0)
    );
    let downs = bfd_downs();
    forge_bfd(&lab.client.ns, CLIENT_IP, rs.ip, 255);
    let o =
        d.vm.run(&forge_bfd_cmd(DIRECTOR_IP, rs.ip, 254))
            .unwrap_or_else(|e| panic!("forging in the guest: {e:#}"));
    assert_eq!(o.rc, 0, "the forger in the guest failed: {}", o.out);
    let o =
        d.vm.run(&forge_bfd_cmd(DIRECTOR_IP, rs.ip, 255))
            .unwrap_or_else(|e| panic!("forging in the guest: {e:#}"));
    assert_eq!(o.rc, 0, "the forger in the guest failed: {}", o.out);
    let seen = wait_for(Duration::from_secs(10), || {
        (rejected("unknown_source") >= 1.0
            && rejected("ttl") >= 1.0
            && rejected("discriminator") >= 1.0)
            .then_some(())
    });
    assert!(
        seen.is_some(),
        "the forged packets were not counted as dropped (unknown_source {}, ttl {}, discriminator {}); session {:?}\nmetrics:\n{}\nagent log:\n{}",
        rejected("unknown_source"),
        rejected("ttl"),
        rejected("discriminator"),
        bfd_state(&lab, 0),
        lab.client
            .ns
            .run(&format!("curl -s -m 5 http://{}:{HTTP_PORT}/metrics", rs.ip))
            .stdout
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
            .lines()
            .filter(|l| l.contains("bfd"))
            .collect::<Vec<_>>()
            .join("\n"),
        tail(&std::fs::read_to_string(&agent3_log).unwrap_or_default(), 30)
    );
    // Longer than the director's detection time (3 x 100 ms) and its HTTP_GET delay_loop.
    std::thread::sleep(Duration::from_millis(1500));
    let r = d.real(&addr);
    assert!(
        weight(100)(r.as_ref()) && bfd_downs() == downs && bfd_state(&lab, 0) == Some(3),
        "a forged packet moved the node (weight {:?}, session {:?}):\n{}",
        r.map(|r| r.weight),
        bfd_state(&lab, 0),
        tail(&d.keepalived_log(), 20)
    );
    // The control: the same packet from the director's address with TTL 255 and the
    // session's discriminator (read off the wire, as an attacker who sees the segment
    // could) is believed, so the checks above are what kept the node in: the agent's
    // session goes Down, the director's BFD_CHECK follows, and the peers bring the session
    // back.
    let disc = sniff_discriminator(&rs.ns, rs.ip, DIRECTOR_IP);
    let o =
        d.vm.run(&forge_bfd_packet_cmd(DIRECTOR_IP, rs.ip, 255, 0, disc))
            .unwrap_or_else(|e| panic!("forging in the guest: {e:#}"));
    assert_eq!(o.rc, 0, "the forger in the guest failed: {}", o.out);
    assert_bfd_down(
        downs,
        "AdminDown from the director's address with TTL 255 and the sniffed discriminator",
    );
    wait(
        "weight 100 after the session came back",
        Duration::from_secs(30),
        &weight(100),
    );
    let _ = gft;
}
