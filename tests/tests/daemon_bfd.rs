//! `lvs-node run` with `[bfd]` against the real keepalived BFD speaker in the director's
//! namespace: the session comes Up, and forged packets (from an address that is not a
//! configured director, or from the director's address with TTL 254 as if routed) change
//! nothing. The same packet sent from the director with TTL 255 does take the session down,
//! so the forgery checks are shown to matter. The agent's own packets carry TTL 255 and
//! DSCP CS6 on the wire. The forger is a small UDP sender run in a namespace (python3, from
//! tests/setup.sh).

mod daemon_util;

use daemon_util::*;
use lab::dr::{DrLab, CLIENT_IP, DIRECTOR_IP};
use lab::wait_for;
use std::time::Duration;

#[test]
fn forged_bfd_from_a_stranger_or_with_low_ttl_changes_nothing() {
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
    let seen = wait_for(Duration::from_secs(5), || {
        (rejected("unknown_source") >= 1.0 && rejected("ttl") >= 1.0).then_some(())
    });
    assert!(
        seen.is_some(),
        "the forged packets were not counted as dropped (unknown_source {}, ttl {})\n{}",
        rejected("unknown_source"),
        rejected("ttl"),
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

    // The control: the same packet from the director with TTL 255 is believed.
    forge_bfd(&lab.director.ns, DIRECTOR_IP, rs.ip, 255);
    assert!(
        wait_for(Duration::from_secs(5), || (downs() >= 1.0).then_some(())).is_some(),
        "an AdminDown from the director with TTL 255 was ignored: the forgery checks prove nothing\n{}",
        diag()
    );
    // And the real peer brings the session back.
    assert!(
        wait_for(Duration::from_secs(20), || up().then_some(())).is_some(),
        "the session did not recover after the AdminDown\n{}",
        diag()
    );
}
