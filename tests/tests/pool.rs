//! `[pool] peers` and `lvs-node pool status` with three real agents in the lab: every node
//! up, one drained, one failing a check, one agent stopped; the running poller logs each
//! peer's state; a host outside the allow lists sees the nodes as unreachable.

mod daemon_util;

use daemon_util::*;
use lab::dr::Host;
use lab::{bins, wait_for, DrLab, LabOpts};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A node whose `flag` check fails while `dir/down` exists, polling the whole pool.
fn node(lab: &DrLab, rs: &Host, dir: &Path, cert: &Path) -> PathBuf {
    pool_node(
        lab,
        rs,
        dir,
        cert,
        ("flag", "flag file present"),
        "interval = \"300ms\"\ntimeout = \"250ms\"\nmax_age = \"1s\"",
    )
}

fn pool_status(rs: &Host, cfg: &Path, args: &str) -> (i32, String, String) {
    let o: Output = lvs(&rs.ns, cfg, &format!("pool status {args}"));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn line_for<'a>(out: &'a str, rs: &Host) -> &'a str {
    let key = format!("http://{}:{HTTP_PORT} ", rs.ip);
    out.lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("no line for {}:\n{out}", rs.ip))
}

/// The agent's log without terminal colour codes.
fn log_text(p: &Path) -> String {
    let raw = std::fs::read_to_string(p).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            for d in it.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn cols(l: &str) -> Vec<&str> {
    l.split_whitespace().collect()
}

#[test]
fn pool_status_shows_up_drained_down_and_unreachable_nodes() {
    let lab = DrLab::build(
        "pool",
        LabOpts {
            reals: 3,
            ..LabOpts::default()
        },
    );
    let dir = TestDir::new(&lab.prefix);
    // A host certificate valid for 30 days, watched by a `certificate` check.
    let cert = self_signed_cert(&dir, 30);

    let mut cfgs = Vec::new();
    let mut pids = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        prepare_real_by_hand(rs);
        let sub = dir.join(&format!("rs{i}"));
        let cfg = node(&lab, rs, &sub, &cert);
        pids.push(start_agent(rs, &cfg, &sub.join("agent.log"), HTTP_PORT));
        cfgs.push(cfg);
    }
    let (rs0, rs1, rs2) = (&lab.reals[0], &lab.reals[1], &lab.reals[2]);

    // All up: exit 0, one line per node (this node included), with weight, sessions and
    // the certificate's days left.
    let (code, out, err) = wait_for(Duration::from_secs(10), || {
        let r = pool_status(rs0, &cfgs[0], "");
        (r.0 == 0).then_some(r)
    })
    .unwrap_or_else(|| panic!("pool never all up: {:?}", pool_status(rs0, &cfgs[0], "")));
    eprintln!("{out}{err}");
    assert_eq!(code, 0);
    // The header, one line per node, and the serving count.
    assert_eq!(out.lines().count(), 5, "{out}");
    assert_eq!(out.lines().last(), Some("SERVING 3 of 3"), "{out}");
    assert!(out.starts_with("NODE"), "{out}");
    for rs in &lab.reals {
        let c = cols(line_for(&out, rs));
        assert_eq!(&c[1..5], ["up", "ready", "100/100", "0"], "{out}");
        // 30 days from its creation: 30 within the second it was made, 29 after.
        assert!(["29d", "30d"].contains(&c[5]), "{out}");
        assert_eq!(c[6], "-", "{out}");
    }

    // rs1 drained: shown as drain, and not an error (an admin's choice).
    assert!(lvs(&rs1.ns, &cfgs[1], "drain --reason upgrade")
        .status
        .success());
    let (code, out, _) = pool_status(rs0, &cfgs[0], "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        &cols(line_for(&out, rs1))[1..4],
        ["drain", "drain", "0/100"]
    );

    // rs2 failing a check: down, with the check and its reason; exit 1.
    std::fs::write(dir.join("rs2").join("down"), "").unwrap();
    let (_, out, _) = wait_for(Duration::from_secs(5), || {
        let r = pool_status(rs0, &cfgs[0], "");
        (r.0 == 1).then_some(r)
    })
    .expect("pool status never exited 1 with rs2 down");
    eprintln!("{out}");
    let l = line_for(&out, rs2);
    assert_eq!(&cols(l)[1..3], ["down", "ready"], "{out}");
    assert!(l.contains("flag: "), "{l}");

    // JSON: the same states, and the full /status document of each node.
    let (code, json, _) = pool_status(rs0, &cfgs[0], "--json");
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let states: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["up", "drain", "down"], "{json}");
    assert_eq!(v[2]["status"]["failing"][0]["name"], "flag");
    assert_eq!(
        v[0]["status"]["node"]["report_http"],
        format!("{}:{HTTP_PORT}", rs0.ip)
    );
    assert_eq!(v[0]["status"]["node"]["services"][0]["ports"][0], 2811);

    // The running poller on rs0 logged rs2 going down, with the reason.
    let log0 = dir.join("rs0").join("agent.log");
    let seen = wait_for(Duration::from_secs(5), || {
        let t = log_text(&log0);
        t.lines()
            .any(|l| {
                l.contains("pool peer state")
                    && l.contains(&format!("http://{}:{HTTP_PORT}", rs2.ip))
                    && l.contains("state=down")
            })
            .then_some(())
    });
    assert!(
        seen.is_some(),
        "no poller log line for rs2 down:\n{}",
        log_text(&log0)
    );

    // rs2's agent stopped: unreachable, exit 1; the poller notices too.
    rs2.ns.kill(pids[2]);
    let (code, out, _) = pool_status(rs0, &cfgs[0], "");
    assert_eq!(code, 1);
    let l = line_for(&out, rs2);
    assert_eq!(cols(l)[1], "unreachable", "{out}");
    assert!(l.contains("connection refused"), "{l}");
    let seen = wait_for(Duration::from_secs(5), || {
        log_text(&log0)
            .lines()
            .any(|l| l.contains("pool peer state") && l.contains("state=unreachable"))
            .then_some(())
    });
    assert!(seen.is_some(), "poller did not log rs2 unreachable");

    // --peer instead of the config: only the named nodes.
    let (code, out, _) = pool_status(
        rs0,
        &cfgs[0],
        &format!("--peer http://{}:{HTTP_PORT}", rs1.ip),
    );
    // rs1 is drained: the one named node does not serve, which fails even though each
    // drain is an admin's choice.
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("SERVING 0 of 1: no node serves: the VIP answers nothing"),
        "{out}"
    );

    // Bad usage: exit 2 naming the flag.
    let (code, _, err) = pool_status(rs0, &cfgs[0], "--peer ftp://x:1");
    assert_eq!(code, 2);
    assert!(err.contains("--peer"), "{err}");

    // The client is in no node's allow list: /status is closed to it.
    let o = lab.client.ns.run(&format!(
        "{} -c /nonexistent pool status --peer http://{}:{HTTP_PORT}",
        bins::lvs_node().display(),
        rs0.ip
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("unreachable"), "{out}");
    assert!(out.contains("allow list"), "{out}");
}
