//! `lvs-node run` with `[bfd]` against real BFD speakers in the director's namespace:
//! keepalived's and FRR's bfdd (run by hand, tests/setup.sh installs `frr`), and a scripted
//! peer (daemon_util/bfd_peer.py) that sends what no real speaker is configured to send.
//!
//! - Forged packets (from an address that is not a configured director, from the
//!   director's address with TTL 254 as if routed, or from the director's address with TTL
//!   255 but Your Discriminator zero, Down or AdminDown) change nothing; the same packet
//!   with the session's discriminator, read off the wire, does take the session down, so
//!   the checks are shown to matter. The agent's packets carry TTL 255 and DSCP CS6.
//! - A director's huge timers are clamped; a Required Min RX of zero stops periodic
//!   packets only while the director keeps asking.
//! - A `[bfd] source` that is not on the host yet is bound once it appears.
//! - Two directors and SIGHUP: a timer change goes through a Poll Sequence, a removed
//!   director gets AdminDown, a new source rebinds.
//! - FRR's bfdd: Up, Down on SIGTERM (AdminDown) and on SIGKILL (detection time).
//!
//! The forgers are small UDP senders run in a namespace (python3, from tests/setup.sh).

mod daemon_util;

use daemon_util::*;
use lab::dr::{DrLab, CLIENT_IP, DIRECTOR_IP};
use lab::wait_for;
use std::time::Duration;

#[test]
fn forged_bfd_from_a_stranger_with_low_ttl_or_without_discriminator_changes_nothing() {
    let lab = DrLab::one_real("bfdns");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let sub = dir.join("rs0");
    std::fs::create_dir_all(&sub).unwrap();
    let _gft = lab::gridftp::start(&rs.ns, rs.ip, "rs0.lab", &sub.join("gridftp.log"));

    // The director's side: keepalived's own BFD process, nothing else. Timers with room for
    // a loaded machine: this test is about which packets count, not about speed.
    let ka = dir.join("keepalived.conf");
    std::fs::write(
        &ka,
        format!(
            "global_defs {{\n    router_id bfdlab\n}}\n\
             bfd_instance node {{\n    neighbor_ip {}\n    source_ip {DIRECTOR_IP}\n    min_rx 100\n    min_tx 100\n    multiplier 5\n}}\n",
            rs.ip
        ),
    )
    .unwrap();
    let d = dir.0.display();
    lab.director.ns.spawn_logged(
        &format!(
            "keepalived -f {} -n -l -D -p {d}/ka.pid -c {d}/ka-c.pid -r {d}/ka-r.pid -b {d}/ka-b.pid",
            ka.display()
        ),
        &dir.join("keepalived.log"),
    );

    let cfg = sub.join("node.toml");
    std::fs::write(
        &cfg,
        node_toml(
            rs,
            &sub,
            &NodeOpts {
                manage_dataplane: true,
                report_extra: &format!("allow = [\"{CLIENT_IP}\", \"{}\"]", rs.ip),
                extra: &format!("[bfd]\ndirectors = [\"{DIRECTOR_IP}\"]\nmin_tx = \"100ms\"\nmin_rx = \"100ms\"\nmultiplier = 5\n"),
                ..NodeOpts::default()
            },
        ),
    )
    .unwrap();
    let log = sub.join("agent.log");
    start_agent(rs, &cfg, &log, HTTP_PORT);
    let cl = &lab.client.ns;
    let state = format!("lvs_realserver_bfd_session_state{{director=\"{DIRECTOR_IP}\"}}");
    let up = || metric(cl, rs.ip, &state) == Some(3.0);
    let diag = || {
        format!(
            "agent log:\n{}\nkeepalived log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(dir.join("keepalived.log")).unwrap_or_default()
        )
    };
    assert!(
        wait_for(Duration::from_secs(20), || up().then_some(())).is_some(),
        "the BFD session with keepalived did not come Up\n{}",
        diag()
    );
    // On the wire: TTL 255 (RFC 5881's GTSM) and DSCP CS6, the network-control class.
    let cap = rs.ok(&format!(
        "timeout 10 tcpdump -i eth0 -n -v -c 1 'udp and src host {} and dst port 3784' 2>/dev/null",
        rs.ip
    ));
    assert!(
        cap.contains("tos 0xc0,") && cap.contains("ttl 255,"),
        "the agent's BFD packet is not marked TTL 255, DSCP CS6 (tos 0xc0):\n{cap}"
    );
    let neighbor_down = format!(
        "lvs_realserver_bfd_transitions_total{{director=\"{DIRECTOR_IP}\",to=\"down\",cause=\"neighbor_down\"}}"
    );
    let downs = || metric(cl, rs.ip, &neighbor_down).unwrap_or(0.0);
    let rejected = |r: &str| {
        metric(
            cl,
            rs.ip,
            &format!("lvs_realserver_bfd_rejected_packets_total{{reason=\"{r}\"}}"),
        )
        .unwrap_or(0.0)
    };

    // From the client: not a configured director.
    forge_bfd(cl, CLIENT_IP, rs.ip, 255);
    // From the director's own address, but with TTL 254: it crossed a router.
    forge_bfd(&lab.director.ns, DIRECTOR_IP, rs.ip, 254);
    // From the director's own address with TTL 255 (a spoofer on the segment), AdminDown
    // and Down, with Your Discriminator zero: RFC 5880 6.8.6 lets such a packet through
    // for session lookup, but an Up session is known to its peer by its discriminator.
    forge_bfd_packet(&lab.director.ns, DIRECTOR_IP, rs.ip, 255, 0, 0);
    forge_bfd_packet(&lab.director.ns, DIRECTOR_IP, rs.ip, 255, 1, 0);
    let seen = wait_for(Duration::from_secs(5), || {
        (rejected("unknown_source") >= 1.0
            && rejected("ttl") >= 1.0
            && rejected("discriminator") >= 2.0)
            .then_some(())
    });
    assert!(
        seen.is_some(),
        "the forged packets were not counted as dropped (unknown_source {}, ttl {}, discriminator {})\n{}",
        rejected("unknown_source"),
        rejected("ttl"),
        rejected("discriminator"),
        diag()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(up(), "a forged packet moved the session\n{}", diag());
    assert_eq!(
        downs(),
        0.0,
        "a forged packet took the session down\n{}",
        diag()
    );

    // The control: the same packet from the director with TTL 255 and the session's
    // discriminator, read off the wire as an attacker who sees the segment could, is
    // believed.
    let disc = sniff_discriminator(&rs.ns, rs.ip, DIRECTOR_IP);
    forge_bfd_packet(&lab.director.ns, DIRECTOR_IP, rs.ip, 255, 0, disc);
    assert!(
        wait_for(Duration::from_secs(5), || (downs() >= 1.0).then_some(())).is_some(),
        "an AdminDown from the director with TTL 255 and discriminator {disc} was ignored: the forgery checks prove nothing\n{}",
        diag()
    );
    // And the real peer brings the session back.
    assert!(
        wait_for(Duration::from_secs(20), || up().then_some(())).is_some(),
        "the session did not recover after the AdminDown\n{}",
        diag()
    );
}

/// One lab node running `lvs-node run` with GridFTP behind its check and `bfd` as its
/// `[bfd]` table: the config path, the agent's log and its PID.
struct Node {
    cfg: std::path::PathBuf,
    log: std::path::PathBuf,
    pid: u32,
    sub: std::path::PathBuf,
}

fn node_cfg(rs: &lab::dr::Host, sub: &std::path::Path, bfd: &str) -> String {
    node_toml(
        rs,
        sub,
        &NodeOpts {
            manage_dataplane: true,
            report_extra: &format!("allow = [\"{CLIENT_IP}\", \"{}\"]", rs.ip),
            extra: &format!("[bfd]\n{bfd}\n"),
            ..NodeOpts::default()
        },
    )
}

fn start_node(dir: &TestDir, rs: &lab::dr::Host, bfd: &str) -> Node {
    let sub = dir.join("rs0");
    std::fs::create_dir_all(&sub).unwrap();
    let cfg = sub.join("node.toml");
    std::fs::write(&cfg, node_cfg(rs, &sub, bfd)).unwrap();
    let log = sub.join("agent.log");
    let pid = start_agent(rs, &cfg, &log, HTTP_PORT);
    Node { cfg, log, pid, sub }
}

impl Node {
    /// A new `[bfd]` table, read on SIGHUP.
    fn reload(&self, rs: &lab::dr::Host, bfd: &str) {
        std::fs::write(&self.cfg, node_cfg(rs, &self.sub, bfd)).unwrap();
        rs.ns.signal(self.pid, nix::sys::signal::Signal::SIGHUP);
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The agent's session state toward `director` as /metrics shows it (3 Up, 1 Down, 0 AdminDown).
fn session_state(lab: &DrLab, rs: &lab::dr::Host, director: impl std::fmt::Display) -> Option<f64> {
    metric(
        &lab.client.ns,
        rs.ip,
        &format!("lvs_realserver_bfd_session_state{{director=\"{director}\"}}"),
    )
}

fn timeouts(lab: &DrLab, rs: &lab::dr::Host, director: impl std::fmt::Display) -> f64 {
    metric(
        &lab.client.ns,
        rs.ip,
        &format!("lvs_realserver_bfd_transitions_total{{director=\"{director}\",to=\"down\",cause=\"timeout\"}}"),
    )
    .unwrap_or(0.0)
}

/// keepalived's BFD process alone in `ns`, one `bfd_instance` per (name, neighbour) from
/// `source`, 100 ms x 5. Returns its log.
fn keepalived_bfd(
    ns: &lab::Netns,
    dir: &TestDir,
    tag: &str,
    source: impl std::fmt::Display,
    instances: &[(&str, String)],
) -> std::path::PathBuf {
    let mut conf = format!("global_defs {{\n    router_id {tag}\n}}\n");
    for (name, neighbor) in instances {
        conf.push_str(&format!(
            "bfd_instance {name} {{\n    neighbor_ip {neighbor}\n    source_ip {source}\n    min_rx 100\n    min_tx 100\n    multiplier 5\n}}\n"
        ));
    }
    let ka = dir.join(&format!("{tag}.conf"));
    std::fs::write(&ka, conf).unwrap();
    let d = dir.0.display();
    let log = dir.join(&format!("{tag}.log"));
    ns.spawn_logged(
        &format!(
            "keepalived -f {} -n -l -D -p {d}/{tag}.pid -c {d}/{tag}-c.pid -r {d}/{tag}-r.pid -b {d}/{tag}-b.pid",
            ka.display()
        ),
        &log,
    );
    log
}

const UP: f64 = 3.0;

/// A director that asks for Desired Min TX and Required Min RX of u32::MAX microseconds (71
/// minutes) with multiplier 255 (forged from its address, or a broken director) neither
/// makes the node send once an hour nor stretches the detection time: the node keeps
/// sending at least once a second and times the silent director out within max(1 s,
/// min_rx) x 3.
#[test]
fn huge_timers_from_the_director_are_clamped() {
    let lab = DrLab::one_real("bfdhuge");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let _gft = lab::gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let huge = u32::MAX;
    let peer = BfdPeer::start(
        &lab.director.ns,
        DIRECTOR_IP,
        rs.ip,
        &dir.0,
        &format!("{{\"every_ms\": 100, \"desired_min_tx\": {huge}, \"required_min_rx\": {huge}, \"mult\": 255}}"),
    );
    let node = start_node(
        &dir,
        rs,
        &format!("directors = [\"{DIRECTOR_IP}\"]\nmin_tx = \"100ms\"\nmin_rx = \"100ms\"\nmultiplier = 3"),
    );
    let diag = || {
        format!(
            "agent log:\n{}\npeer saw:\n{}",
            node.log(),
            peer.received().join("\n")
        )
    };
    assert!(
        wait_for(Duration::from_secs(20), || (session_state(
            &lab,
            rs,
            DIRECTOR_IP
        ) == Some(UP))
        .then_some(()))
        .is_some(),
        "the session with the scripted peer did not come Up\n{}",
        diag()
    );
    // At most one second between packets (jitter 75-100 %): 3 or more in 3.5 s.
    let n = peer.count_during(Duration::from_millis(3500));
    assert!(
        n >= 3,
        "{n} packets in 3.5 s: the director's 71-minute Required Min RX was taken unclamped\n{}",
        diag()
    );
    assert!(
        node.log().contains("clamped"),
        "the clamp was not logged\n{}",
        diag()
    );
    // The director falls silent: the detection time is at most max(1 s, 100 ms) x 3.
    let before = timeouts(&lab, rs, DIRECTOR_IP);
    peer.set("{\"every_ms\": 0}");
    let t0 = std::time::Instant::now();
    let down = wait_for(Duration::from_secs(8), || {
        (timeouts(&lab, rs, DIRECTOR_IP) > before).then_some(t0.elapsed())
    });
    let Some(took) = down else {
        panic!(
            "no detection timeout within 8 s of the director's silence: its 71-minute Desired Min TX x 255 was taken\n{}",
            diag()
        );
    };
    eprintln!("silent director timed out after {took:?}");
    assert!(
        took <= Duration::from_millis(4500),
        "took {took:?}\n{}",
        diag()
    );
}

/// RFC 5880 6.8.7: a remote Required Min RX of zero means no periodic packets. The agent
/// logs it and honours it while the director says so, resumes when the director asks
/// again, and, when that director falls silent, times it out and announces itself again
/// at the Down rate instead of staying mute for good.
#[test]
fn zero_required_min_rx_silences_only_while_the_director_asks() {
    let lab = DrLab::one_real("bfdzero");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let _gft = lab::gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let ctl = |every: u32, rx: u32| {
        format!("{{\"every_ms\": {every}, \"desired_min_tx\": 100000, \"required_min_rx\": {rx}, \"mult\": 3}}")
    };
    let peer = BfdPeer::start(&lab.director.ns, DIRECTOR_IP, rs.ip, &dir.0, &ctl(100, 0));
    let node = start_node(
        &dir,
        rs,
        &format!("directors = [\"{DIRECTOR_IP}\"]\nmin_tx = \"100ms\"\nmin_rx = \"100ms\"\nmultiplier = 3"),
    );
    let diag = || {
        format!(
            "agent log:\n{}\npeer saw:\n{}",
            node.log(),
            peer.received().join("\n")
        )
    };
    assert!(
        wait_for(Duration::from_secs(20), || (session_state(
            &lab,
            rs,
            DIRECTOR_IP
        ) == Some(UP))
        .then_some(()))
        .is_some(),
        "the session with the scripted peer did not come Up\n{}",
        diag()
    );
    assert!(
        node.log().contains("asks for no periodic packets"),
        "Required Min RX 0 was not logged\n{}",
        diag()
    );
    std::thread::sleep(Duration::from_millis(500));
    let n = peer.count_during(Duration::from_secs(2));
    assert!(
        n <= 1,
        "{n} packets in 2 s while the director asks for none\n{}",
        diag()
    );
    // The director asks again: 100 ms.
    peer.set(&ctl(100, 100_000));
    let n = peer.count_during(Duration::from_secs(2));
    assert!(
        n >= 10,
        "{n} packets in 2 s after the director asked for 100 ms again\n{}",
        diag()
    );
    // Zero again, then silence: the timeout forgets the wish.
    peer.set(&ctl(100, 0));
    std::thread::sleep(Duration::from_millis(500));
    let before = timeouts(&lab, rs, DIRECTOR_IP);
    peer.set(&ctl(0, 0));
    assert!(
        wait_for(Duration::from_secs(5), || (timeouts(&lab, rs, DIRECTOR_IP)
            > before)
            .then_some(()))
        .is_some(),
        "the silent director was not timed out\n{}",
        diag()
    );
    let n = peer.count_during(Duration::from_secs(3));
    assert!(
        n >= 2,
        "{n} packets in 3 s after the session timed out: the director's zero Required Min RX silenced it for good\n{}",
        diag()
    );
}

/// `[bfd] source` not on the host when the agent starts (an address that keepalived or
/// DHCP adds later): the agent runs, the session waits, and once the address is added the
/// sockets are bound (retried with backoff) and the session with keepalived comes Up.
#[test]
fn a_source_address_added_after_start_is_bound() {
    let lab = DrLab::one_real("bfdlate");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let _gft = lab::gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let late = "192.0.2.51";
    let ka = keepalived_bfd(
        &lab.director.ns,
        &dir,
        "ka",
        DIRECTOR_IP,
        &[("late", late.to_string())],
    );
    let node = start_node(
        &dir,
        rs,
        &format!("directors = [\"{DIRECTOR_IP}\"]\nsource = \"{late}\"\nmin_tx = \"100ms\"\nmin_rx = \"100ms\"\nmultiplier = 5"),
    );
    let diag = || {
        format!(
            "agent log:\n{}\nkeepalived log:\n{}",
            node.log(),
            std::fs::read_to_string(&ka).unwrap_or_default()
        )
    };
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        session_state(&lab, rs, DIRECTOR_IP),
        Some(1.0),
        "the session should wait Down for its source address\n{}",
        diag()
    );
    assert!(
        node.log().contains("not an address of this host yet"),
        "{}",
        diag()
    );
    rs.ok(&format!("ip addr add {late}/24 dev eth0"));
    let t0 = std::time::Instant::now();
    assert!(
        wait_for(Duration::from_secs(30), || (session_state(
            &lab,
            rs,
            DIRECTOR_IP
        ) == Some(UP))
        .then_some(()))
        .is_some(),
        "the session did not come Up after its source address was added\n{}",
        diag()
    );
    eprintln!("Up {:?} after the address was added", t0.elapsed());
}

/// `tcpdump -v` of BFD in `ns` for the duration of `during`, one string per packet with
/// its whitespace collapsed to single spaces.
/// Starts `tcpdump -i eth0 -n -l ARGS` in `ns`, writing to `file`, and returns its PID once
/// it listens.
fn tcpdump(ns: &lab::Netns, args: &str, file: &std::path::Path) -> u32 {
    let pid = ns.spawn_logged(&format!("tcpdump -i eth0 -n -l {args}"), file);
    let listening = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .contains("listening on")
            .then_some(())
    });
    assert!(listening.is_some(), "tcpdump did not start in {}", ns.name);
    pid
}

fn capture_bfd(ns: &lab::Netns, dir: &TestDir, tag: &str, during: impl FnOnce()) -> Vec<String> {
    let file = dir.join(&format!("{tag}.cap"));
    let pid = tcpdump(ns, "-v -t 'udp port 3784'", &file);
    during();
    ns.kill(pid);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let mut packets: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("IP ") || packets.is_empty() {
            packets.push(String::new());
        }
        let last = packets.last_mut().unwrap();
        for w in line.split_whitespace() {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(w);
        }
    }
    packets
}

/// (time in seconds, destination address) of every BFD packet `src` sends within `window`,
/// captured in `ns`.
fn sent_times(
    ns: &lab::Netns,
    dir: &TestDir,
    src: impl std::fmt::Display,
    window: Duration,
) -> Vec<(f64, String)> {
    let file = dir.join("sent-times.cap");
    let pid = tcpdump(
        ns,
        &format!("-tt 'udp dst port 3784 and src host {src}'"),
        &file,
    );
    std::thread::sleep(window);
    ns.kill(pid);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            // 1733580000.123456 IP 192.0.2.11.50000 > 192.0.2.2.3784: BFDv1, ...
            let mut w = l.split_whitespace();
            let t: f64 = w.next()?.parse().ok()?;
            let dst = w.nth(3)?.strip_suffix(".3784:")?.to_string();
            Some((t, dst))
        })
        .collect()
}

/// Two directors, then SIGHUP changes to `[bfd]`, seen on the wire and by keepalived:
/// - the periodic packets to both directors leave in one wakeup;
/// - a longer min_tx goes out with Poll, keepalived answers with Final, and the session
///   stays Up (RFC 5880 6.8.3);
/// - a director removed from the list gets a Down with diagnostic 7 (AdminDown) and leaves
///   /metrics;
/// - a new `source` rebinds: keepalived's session toward the new address comes Up.
///
/// The second director is keepalived in the lab's second real-server namespace, which here
/// only stands on the segment as a peer (nothing else runs there).
#[test]
fn two_directors_and_reloads_poll_admin_down_and_rebind() {
    let lab = DrLab::build(
        "bfdtwo",
        lab::dr::LabOpts {
            reals: 2,
            ..Default::default()
        },
    );
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let d2 = &lab.reals[1];
    let moved = "192.0.2.61";
    let _gft = lab::gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let ka1 = keepalived_bfd(
        &lab.director.ns,
        &dir,
        "ka1",
        DIRECTOR_IP,
        &[("node", rs.ip.to_string()), ("moved", moved.to_string())],
    );
    let ka2 = keepalived_bfd(&d2.ns, &dir, "ka2", d2.ip, &[("node", rs.ip.to_string())]);
    let both = format!(
        "directors = [\"{DIRECTOR_IP}\", \"{}\"]\nmultiplier = 5\nmin_rx = \"100ms\"\n",
        d2.ip
    );
    let node = start_node(&dir, rs, &format!("{both}min_tx = \"100ms\""));
    let diag = || {
        format!(
            "agent log:\n{}\nkeepalived 1:\n{}\nkeepalived 2:\n{}",
            node.log(),
            std::fs::read_to_string(&ka1).unwrap_or_default(),
            std::fs::read_to_string(&ka2).unwrap_or_default()
        )
    };
    let both_up = || {
        (session_state(&lab, rs, DIRECTOR_IP) == Some(UP)
            && session_state(&lab, rs, d2.ip) == Some(UP))
        .then_some(())
    };
    assert!(
        wait_for(Duration::from_secs(30), both_up).is_some(),
        "the sessions with both directors did not come Up\n{}",
        diag()
    );
    // Past keepalived's own Poll Sequence after Up.
    std::thread::sleep(Duration::from_secs(2));

    // 0. One wakeup for both sessions: the node's periodic packets to the two directors
    //    leave together (the second one early, within RFC 5880 6.8.7's 75 % floor).
    let sent = sent_times(&rs.ns, &dir, rs.ip, Duration::from_secs(3));
    let to = |d: &str| -> Vec<f64> {
        sent.iter()
            .filter(|(_, dst)| dst == d)
            .map(|(t, _)| *t)
            .collect()
    };
    let (a, b) = (to(&DIRECTOR_IP.to_string()), to(&d2.ip.to_string()));
    let paired = b
        .iter()
        .filter(|t| a.iter().any(|u| (*t - u).abs() < 0.002))
        .count();
    eprintln!(
        "periodic packets in 3 s: {} to director 1, {} to director 2, {paired} of the latter within 2 ms of one to director 1",
        a.len(),
        b.len()
    );
    assert!(
        a.len() >= 20 && b.len() >= 20 && paired * 10 >= b.len() * 9,
        "the sessions do not share wakeups: {} and {} packets, {paired} paired\n{sent:?}",
        a.len(),
        b.len()
    );

    // 1. min_tx 100 ms -> 200 ms: Poll with the new interval, Final from keepalived.
    let from_node = format!("{}.", rs.ip);
    let to_d1 = format!("> {DIRECTOR_IP}.3784");
    let from_d1 = format!("{DIRECTOR_IP}.");
    let cap = capture_bfd(&lab.director.ns, &dir, "poll", || {
        node.reload(rs, &format!("{both}min_tx = \"200ms\""));
        std::thread::sleep(Duration::from_secs(2));
    });
    let poll = cap.iter().position(|p| {
        p.contains(&from_node)
            && p.contains(&to_d1)
            && p.contains("Poll")
            && p.contains("Desired min Tx Interval: 200 ms")
    });
    let Some(poll) = poll else {
        panic!(
            "no Poll with Desired Min TX 200 ms from the node after the reload:\n{}\n{}",
            cap.join("\n"),
            diag()
        );
    };
    assert!(
        cap[poll..]
            .iter()
            .any(|p| p.starts_with("IP ") && p.contains(&from_d1) && p.contains("Final")),
        "keepalived did not answer the Poll with Final:\n{}",
        cap.join("\n")
    );
    assert!(
        cap[poll..]
            .iter()
            .rev()
            .take(3)
            .any(|p| p.contains(&from_node)
                && !p.contains("Poll")
                && p.contains("Desired min Tx Interval: 200 ms")),
        "the Poll Sequence did not end (the node still polls):\n{}",
        cap.join("\n")
    );
    assert!(
        both_up().is_some(),
        "a timer change took a session down\n{}",
        diag()
    );

    // 2. The second director removed: it gets Down with diagnostic 7 and leaves /metrics.
    let only_d1 = format!(
        "directors = [\"{DIRECTOR_IP}\"]\nmultiplier = 5\nmin_rx = \"100ms\"\nmin_tx = \"200ms\"\n"
    );
    let cap = capture_bfd(&d2.ns, &dir, "removed", || {
        node.reload(rs, &only_d1);
        std::thread::sleep(Duration::from_secs(2));
    });
    assert!(
        cap.iter().any(|p| p.contains(&from_node)
            && p.contains("State Down")
            && p.contains("Administratively Down")),
        "the removed director got no AdminDown (Down, diagnostic 7):\n{}\n{}",
        cap.join("\n"),
        diag()
    );
    assert_eq!(
        session_state(&lab, rs, d2.ip),
        None,
        "the removed session is still in /metrics"
    );
    assert_eq!(session_state(&lab, rs, DIRECTOR_IP), Some(UP), "{}", diag());

    // 3. A new source: the node's second address; keepalived's instance toward it comes Up.
    rs.ok(&format!("ip addr add {moved}/24 dev eth0"));
    node.reload(rs, &format!("{only_d1}source = \"{moved}\"\n"));
    let up = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&ka1)
            .unwrap_or_default()
            .contains("(moved) Entering Up state")
            .then_some(())
    });
    assert!(
        up.is_some(),
        "no session from the new source {moved}\n{}",
        diag()
    );
    assert!(
        wait_for(Duration::from_secs(10), || (session_state(
            &lab,
            rs,
            DIRECTOR_IP
        ) == Some(UP))
        .then_some(()))
        .is_some(),
        "{}",
        diag()
    );
}

/// FRR's bfdd (Debian `frr`) as the director's BFD speaker, run by hand in the director's
/// namespace with its own config, vty socket directory and pid file. The session comes Up
/// on both sides; SIGTERM to the agent takes bfdd's session Down at once with the remote
/// diagnostic "administratively down"; SIGKILL takes it Down by bfdd's detection time.
#[test]
fn frr_bfdd_interoperates() {
    let lab = DrLab::one_real("bfdfrr");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let _gft = lab::gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let frr = dir.join("frr");
    std::fs::create_dir_all(&frr).unwrap();
    let conf = frr.join("bfdd.conf");
    std::fs::write(
        &conf,
        format!(
            "log file {}/bfdd.log debugging\ndebug bfd peer\nbfd\n peer {} local-address {DIRECTOR_IP}\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 5\n !\n!\n",
            frr.display(),
            rs.ip
        ),
    )
    .unwrap();
    // bfdd drops to the frr user: its directory must be that user's.
    let chown = std::process::Command::new("chown")
        .arg("-R")
        .arg("frr:frr")
        .arg(&frr)
        .status()
        .unwrap();
    assert!(chown.success(), "chown frr:frr {}", frr.display());
    let f = frr.display();
    lab.director.ns.spawn_logged(
        &format!(
            "/usr/lib/frr/bfdd -f {f}/bfdd.conf --vty_socket {f} -i {f}/bfdd.pid -z {f}/zserv.api --bfdctl {f}/bfdd.sock -u frr -g frr -A 127.0.0.1 -P 0"
        ),
        &frr.join("bfdd.out"),
    );
    let peer = || -> serde_json::Value {
        let out = lab.director.ns.run(&format!(
            "vtysh --vty_socket {f} -d bfdd -c 'show bfd peers json'"
        ));
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.get(0).cloned())
            .unwrap_or(serde_json::Value::Null)
    };
    let status = || peer()["status"].as_str().unwrap_or("").to_string();
    let bfd = format!(
        "directors = [\"{DIRECTOR_IP}\"]\nmin_tx = \"100ms\"\nmin_rx = \"100ms\"\nmultiplier = 5"
    );
    let mut node = start_node(&dir, rs, &bfd);
    let diag = |node: &Node| {
        format!(
            "agent log:\n{}\nbfdd peer: {}\nbfdd log:\n{}\n{}",
            node.log(),
            peer(),
            std::fs::read_to_string(frr.join("bfdd.log")).unwrap_or_default(),
            std::fs::read_to_string(frr.join("bfdd.out")).unwrap_or_default()
        )
    };
    let both_up =
        || (status() == "up" && session_state(&lab, rs, DIRECTOR_IP) == Some(UP)).then_some(());
    assert!(
        wait_for(Duration::from_secs(30), both_up).is_some(),
        "the session with FRR's bfdd did not come Up\n{}",
        diag(&node)
    );
    let p = peer();
    assert_eq!(p["remote-detect-multiplier"], 5, "{p}");
    assert_eq!(p["remote-receive-interval"], 100, "{p}");

    // SIGTERM: AdminDown (Down, diagnostic 7) before the agent exits.
    rs.ns.signal(node.pid, nix::sys::signal::Signal::SIGTERM);
    let t0 = std::time::Instant::now();
    let down = wait_for(Duration::from_secs(10), || {
        (status() == "down").then_some(t0.elapsed())
    });
    assert!(
        down.is_some(),
        "bfdd's session stayed up after SIGTERM\n{}",
        diag(&node)
    );
    let p = peer();
    assert_eq!(
        p["remote-diagnostic"],
        "administratively down",
        "bfdd did not hear AdminDown: {p}\n{}",
        diag(&node)
    );
    eprintln!(
        "bfdd Down {:?} after SIGTERM (polled through vtysh)",
        down.unwrap()
    );
    rs.ns.wait(node.pid, Duration::from_secs(10));

    // A new agent: Up again; then SIGKILL: nothing is sent, bfdd's detection time decides.
    node.pid = start_agent(rs, &node.cfg, &node.sub.join("agent2.log"), HTTP_PORT);
    node.log = node.sub.join("agent2.log");
    assert!(
        wait_for(Duration::from_secs(30), both_up).is_some(),
        "the session with FRR's bfdd did not come Up again\n{}",
        diag(&node)
    );
    rs.ns.kill(node.pid);
    let t0 = std::time::Instant::now();
    let down = wait_for(Duration::from_secs(10), || {
        (status() == "down").then_some(t0.elapsed())
    });
    assert!(
        down.is_some(),
        "bfdd's session stayed up after SIGKILL\n{}",
        diag(&node)
    );
    let p = peer();
    assert_eq!(
        p["diagnostic"],
        "control detection time expired",
        "bfdd's session went down for another reason: {p}\n{}",
        diag(&node)
    );
    eprintln!(
        "bfdd Down {:?} after SIGKILL (polled through vtysh)",
        down.unwrap()
    );
}
