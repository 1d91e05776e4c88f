//! `lvs-node run` in the namespace lab with real components: globus-gridftp-server on every
//! real server, globus-url-copy through the VIP via the nftables director, and the agent's
//! /health, agent-check, probe and drain. The data plane is set up by hand here (see
//! daemon_util::prepare_real_by_hand); repair tests live in daemon_repair.rs.

mod daemon_util;

use daemon_util::*;
use lab::dr::VIP;
use lab::{gridftp, wait_for, DrLab, LabOpts};
use std::time::{Duration, Instant};

#[test]
fn gridftp_through_vip_and_health_follows_the_server() {
    let lab = DrLab::build("gft", LabOpts::default());
    let dir = TestDir::new(&lab.prefix);
    let (file, sum) = gridftp::make_file(&dir.join("data"), "f.bin", 2 << 20);
    let mut servers = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        prepare_real_by_hand(rs);
        let sub = dir.join(&format!("rs{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        servers.push(gridftp::start(
            &rs.ns,
            rs.ip,
            &format!("rs{i}.lab"),
            &sub.join("gridftp.log"),
        ));
        let cfg = write_config(rs, &sub, &NodeOpts::default());
        start_agent(rs, &cfg, &sub.join("agent.log"), HTTP_PORT);
    }
    for rs in &lab.reals {
        let r = wait_health(
            &lab.director.ns,
            rs.ip,
            HTTP_PORT,
            200,
            Duration::from_secs(5),
        );
        let (_, body) = r.unwrap_or_else(|| {
            panic!(
                "{} not up: {:?}",
                rs.ip,
                health(&lab.director.ns, rs.ip, HTTP_PORT)
            )
        });
        assert!(
            body.starts_with("state=up admin=ready weight=100"),
            "{body}"
        );
    }

    // Two fetches through the VIP: the director round-robins them over both nodes.
    for k in 0..2 {
        let out = dir.join(&format!("out{k}.bin"));
        let r = gridftp::url_copy(&lab.client.ns, &VIP.to_string(), &file, &out);
        assert!(
            r.status.success(),
            "globus-url-copy #{k}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_eq!(
            gridftp::sha256(&out),
            sum,
            "fetch #{k} through the VIP is not intact"
        );
    }

    // The configured schedule, not the default one: the GridFTP check runs every 500 ms
    // (`interval = "500ms"`), so rs0's server sees 2 probes a second from the agent (one
    // connection each, to 127.0.0.1:2811); the default 2 s interval would give 0.5.
    let rs = &lab.reals[0];
    rs.ok(
        "nft add table ip probes && \
         nft add chain ip probes in '{ type filter hook input priority 0; policy accept; }' && \
         nft add rule ip probes in ip daddr 127.0.0.1 tcp dport 2811 'tcp flags & (syn | ack) == syn' counter",
    );
    let probes = || -> u64 {
        let out = rs.ok("nft list table ip probes");
        let i = out.find("packets ").expect("counter") + 8;
        out[i..].split_whitespace().next().unwrap().parse().unwrap()
    };
    let (n0, w0) = (probes(), Instant::now());
    std::thread::sleep(Duration::from_secs(6));
    let (n, secs) = (probes() - n0, w0.elapsed().as_secs_f64());
    let rate = n as f64 / secs;
    eprintln!("GridFTP probes: {n} in {secs:.1} s ({rate:.2}/s)");
    assert!(
        (1.5..=2.5).contains(&rate),
        "{n} probes in {secs:.1} s: the check does not run every 500 ms"
    );

    // Kill GridFTP on rs0: /health turns 503 within interval + timeout (500ms + 300ms).
    lab.reals[0].ns.kill(servers[0]);
    let t0 = Instant::now();
    let (_, body) = wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        503,
        Duration::from_secs(5),
    )
    .expect("no 503 after killing gridftp");
    let detect = t0.elapsed();
    eprintln!("failure detected in {detect:?}");
    // Nominal: interval + timeout (800 ms). The bound is loose on purpose, as a loaded
    // machine stretches it: it only tells the check schedule from a stall. The figures are
    // the benchmark's (docs/benchmarks.md).
    assert!(
        detect <= Duration::from_millis(3000),
        "detection took {detect:?}"
    );
    assert!(
        body.contains("reason=\"gridftp: connection refused\""),
        "{body}"
    );
    assert_eq!(
        agent_line(&lab.director.ns, rs.ip),
        "down ready #gridftp: connection refused"
    );
    // The other node is unaffected.
    assert_eq!(health(&lab.director.ns, lab.reals[1].ip, HTTP_PORT).0, 200);

    // Restart: 200 again after `rise` (2) good results, not on the first one.
    let sub = dir.join("rs0");
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &sub.join("gridftp2.log"));
    let t1 = Instant::now();
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(5),
    )
    .expect("no 200 after restart");
    let back = t1.elapsed();
    eprintln!("back up after {back:?}");
    assert!(
        back >= Duration::from_millis(400),
        "came back after one result ({back:?}); rise is 2"
    );
    // Nominal: two intervals and a timeout (1.3 s); loose for the same reason.
    assert!(
        back <= Duration::from_millis(4000),
        "recovery took {back:?}"
    );
}

#[test]
fn haproxy_agent_check_shows_weight_drain_maint_and_ready() {
    let lab = DrLab::one_real("hap");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            report_extra: "allow = [\"192.0.2.2\"]",
            extra: "[weight]\nbase = 100\nsessions_per_core = 1\n",
            ..NodeOpts::default()
        },
    );
    // The allow-list admits the director only: start_agent's own probe runs from rs0, so
    // wait from the director instead.
    let log = dir.join("agent.log");
    rs.ns.spawn_logged(
        &format!(
            "{} -c {} -v run",
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &log,
    );
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| {
        panic!(
            "agent not up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });

    let hap = lab::haproxy::Haproxy::start(
        &lab.director.ns,
        &dir.join("haproxy"),
        &[lab::haproxy::Server {
            name: "rs0".into(),
            addr: format!("{}:2811", rs.ip),
            agent_addr: rs.ip.to_string(),
            agent_port: AGENT_PORT,
        }],
    );
    let d = &lab.director.ns;
    let t = Duration::from_secs(10);
    hap.wait_server(d, "rs0", "UP", Some(100), t).unwrap();

    // One established session on VIP:2811 with sessions_per_core = 1 scales the weight.
    let sess = lab
        .client
        .ns
        .spawn(&format!("socat -u TCP:{VIP}:2811 STDOUT"));
    let want = ((100.0 * (1.0 - 1.0 / cores() as f64)).round() as u32).max(1);
    hap.wait_server(d, "rs0", "UP", Some(want), t).unwrap();
    assert_eq!(agent_line(d, rs.ip), format!("up ready {want}%"));
    lab.client.ns.kill(sess);
    hap.wait_server(d, "rs0", "UP", Some(100), t).unwrap();

    let ok = |args: &str| {
        let o = lvs(&rs.ns, &cfg, args);
        assert!(
            o.status.success(),
            "lvs-node {args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok("drain --reason test");
    hap.wait_server(d, "rs0", "DRAIN", None, t).unwrap();
    ok("drain --maint --reason upgrade");
    hap.wait_server(d, "rs0", "MAINT", None, t).unwrap();
    ok("resume");
    hap.wait_server(d, "rs0", "UP", Some(100), t).unwrap();

    // The allow-list: the client is not a director and gets nothing.
    assert_eq!(agent_line(&lab.client.ns, rs.ip), "");
    assert_eq!(health(&lab.client.ns, rs.ip, HTTP_PORT).0, 0);
}

#[test]
fn probe_exit_codes_and_health_contract() {
    let lab = DrLab::one_real("prb");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let gpid = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let allow = format!("allow = [\"{}\"]\npublic_health = true", lab.director.ip);
    // /status is for the allow list only: this test reads it from the director.
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            extra: "[weight]\nbase = 100\nsessions_per_core = 1\n",
            report_extra: &allow,
            ..NodeOpts::default()
        },
    );
    let agent = start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    let d = &lab.director.ns;
    wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(5)).expect("up");
    let url = format!("http://{}:{HTTP_PORT}", rs.ip);
    let probe = |timeout: &str| -> (i32, Duration) {
        let t = Instant::now();
        let o = d.run(&format!(
            "{} probe --agent {url} --timeout {timeout}",
            lab::bins::lvs_node().display()
        ));
        (o.status.code().unwrap_or(-1), t.elapsed())
    };
    let wait_probe = |code: i32| {
        wait_for(Duration::from_secs(5), || {
            (probe("1s").0 == code).then_some(())
        })
        .unwrap_or_else(|| panic!("probe never exited {code}; last {:?}", probe("1s")));
    };

    // /health contract.
    let (code, body) = health(d, rs.ip, HTTP_PORT);
    assert_eq!(
        (code, body.as_str()),
        (200, "state=up admin=ready weight=100 base=100")
    );
    let st = d.ok(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -X POST {url}/health"
    ));
    assert_eq!(st, "405");
    let st = d.ok(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' {url}/nope"
    ));
    assert_eq!(st, "404");
    let st = d.ok(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -I {url}/health"
    ));
    assert_eq!(st, "200");
    let status = d.ok(&format!("curl -s {url}/status"));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["state"], "up");
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "gridftp" && c["latency_ms"].as_f64().unwrap() > 0.0));
    let metrics = d.ok(&format!("curl -s {url}/metrics"));
    for m in [
        "lvs_realserver_vip_present{vip=\"192.0.2.100\"} 1",
        "lvs_realserver_arp_suppressed 1",
        "lvs_realserver_check_up{check=\"gridftp\",kind=\"gridftp\"} 1",
        "lvs_realserver_advertised_weight 100",
        "lvs_realserver_admin_state 0",
        "lvs_realserver_repairs_total 0",
        "lvs_realserver_build_info{",
    ] {
        assert!(metrics.contains(m), "missing {m} in\n{metrics}");
    }
    // A request head over the limit is refused, not buffered.
    let big = "x".repeat(20_000);
    let st = d.run(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -H 'X-Big: {big}' {url}/health"
    ));
    let st = String::from_utf8_lossy(&st.stdout).to_string();
    assert_eq!(st, "431", "oversized head");

    // Who sees what: /health and /metrics are public, /status (check output, the admin's
    // reason) only for the directors in report.allow.
    let c = &lab.client.ns;
    let code = |ns: &lab::Netns, path: &str| {
        ns.ok(&format!(
            "curl -s -o /dev/null -m 2 -w '%{{http_code}}' {url}{path}"
        ))
    };
    assert_eq!(code(c, "/health"), "200");
    assert_eq!(code(c, "/metrics"), "200");
    assert_eq!(code(c, "/status"), "403");
    assert!(!c
        .ok(&format!("curl -s -m 2 {url}/status"))
        .contains("GridFTP"));
    assert_eq!(code(d, "/status"), "200");

    // Exit codes for keepalived's misc_dynamic.
    assert_eq!(probe("1s").0, 0, "up at full weight");
    let sess = lab
        .client
        .ns
        .spawn(&format!("socat -u TCP:{VIP}:2811 STDOUT"));
    let want = ((100.0 * (1.0 - 1.0 / cores() as f64)).round() as i32).max(1);
    wait_probe(2 + want);
    lab.client.ns.kill(sess);
    wait_probe(0);
    assert!(lvs(&rs.ns, &cfg, "drain").status.success());
    assert_eq!(probe("1s").0, 2, "drain = weight 0");
    assert!(lvs(&rs.ns, &cfg, "drain --maint").status.success());
    assert_eq!(probe("1s").0, 1, "maint");
    assert!(lvs(&rs.ns, &cfg, "resume").status.success());
    assert_eq!(probe("1s").0, 0);
    rs.ns.kill(gpid);
    wait_probe(1);
    let (code, body) = health(d, rs.ip, HTTP_PORT);
    assert_eq!(code, 503);
    assert!(
        body.starts_with("state=down admin=ready weight=0"),
        "{body}"
    );

    // Fail closed: an agent that does not answer at all, quickly.
    rs.ok(&format!("nft add table inet blk && nft add chain inet blk in '{{ type filter hook input priority 0; }}' && nft add rule inet blk in tcp dport {HTTP_PORT} drop"));
    let (c, took) = probe("500ms");
    assert_eq!(c, 1);
    assert!(took < Duration::from_millis(1500), "probe took {took:?}");
    rs.ok("nft delete table inet blk");
    rs.ns.kill(agent);
    let (c, _) = probe("500ms");
    assert_eq!(c, 1, "no agent = down");
}

#[test]
fn drain_wait_outlasts_a_throttled_transfer() {
    let lab = DrLab::one_real("drn");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let cfg = write_config(rs, &dir.join("rs0"), &NodeOpts::default());
    start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(5),
    )
    .expect("up");
    // ~3 MiB at 6 Mbit/s: about 4 seconds on the wire.
    let (file, sum) = gridftp::make_file(&dir.join("data"), "big.bin", 3 << 20);
    rs.ok("tc qdisc add dev eth0 root tbf rate 6mbit burst 32kbit latency 400ms");
    let out = dir.join("out.bin");
    let copy = lab.client.ns.spawn_logged(
        &gridftp::url_copy_cmd(&VIP.to_string(), &file, &out),
        &dir.join("copy.log"),
    );
    // Wait until the control session is established on VIP:2811.
    wait_for(Duration::from_secs(10), || {
        let o = rs
            .ns
            .run("ss -Htn state established '( sport = :2811 )' | grep -c . ");
        (String::from_utf8_lossy(&o.stdout).trim() != "0").then_some(())
    })
    .expect("no session on the VIP");
    std::thread::sleep(Duration::from_millis(500));
    let drain_log = dir.join("drain.log");
    let drain = rs.ns.spawn_logged(
        &format!(
            "{} -c {} drain --reason test --wait --timeout 60s",
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &drain_log,
    );
    // While draining: directors see 503, the transfer goes on.
    let (code, body) = wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        503,
        Duration::from_secs(3),
    )
    .expect("503 while draining");
    assert!(
        body.starts_with("state=drain admin=drain weight=0"),
        "{body}"
    );

    let (mut copy_done, mut drain_done) = (None, None);
    // `drain --wait` ends when the node's session closes; the client process exits a moment
    // later (its own teardown). So when drain ends first, the file must already be whole.
    let whole = || std::fs::metadata(&out).map(|m| m.len()).ok() == Some(3 << 20);
    let mut whole_at_drain = false;
    let t0 = Instant::now();
    while (copy_done.is_none() || drain_done.is_none()) && t0.elapsed() < Duration::from_secs(90) {
        if copy_done.is_none() {
            if let Some(c) = lab.client.ns.wait(copy, Duration::from_millis(10)) {
                copy_done = Some((Instant::now(), c));
            }
        }
        if drain_done.is_none() {
            if let Some(c) = rs.ns.wait(drain, Duration::from_millis(10)) {
                drain_done = Some((Instant::now(), c));
                whole_at_drain = whole();
            }
        }
    }
    let (tc, cc) = copy_done.expect("transfer did not finish");
    let (td, dc) = drain_done.expect("drain --wait did not return");
    let dlog = std::fs::read_to_string(&drain_log).unwrap_or_default();
    assert_eq!(
        cc,
        0,
        "transfer failed: {}",
        std::fs::read_to_string(dir.join("copy.log")).unwrap_or_default()
    );
    assert_eq!(dc, 0, "drain failed: {dlog}");
    assert!(
        td >= tc || whole_at_drain,
        "drain --wait returned {:?} before the transfer ended, with the file not yet whole",
        tc - td
    );
    assert!(
        dlog.contains("waiting: 1 established session"),
        "no progress shown: {dlog}"
    );
    assert_eq!(
        gridftp::sha256(&out),
        sum,
        "the drained transfer is not byte-identical"
    );
    eprintln!(
        "transfer took {:?}; drain returned {:?} after it",
        tc - t0,
        td - tc
    );
    let _ = code;
}

/// Only root drains: a user who can reach the control socket (its mode opened by mistake)
/// is still refused by the agent's uid check, and the node stays ready. Then `drain --wait
/// --timeout` with a session that never ends: exit 1 after the timeout, node still drained.
#[test]
fn drain_is_root_only_and_wait_timeout_leaves_the_node_drained() {
    let lab = DrLab::one_real("drt");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let sub = dir.join("rs0");
    let cfg = write_config(rs, &sub, &NodeOpts::default());
    start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    let d = &lab.director.ns;
    wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(5)).expect("up");

    // The socket and every directory above it opened to everyone: only the uid check is left.
    rs.ok(&format!(
        "chmod 0777 {s} && chmod 0755 {d} && chmod 0666 {d}/control.sock",
        s = sub.display(),
        d = sub.display()
    ));
    let user = rs.ns.run(&format!(
        "setpriv --reuid=4321 --regid=4321 --clear-groups {} -c {} drain --reason not-root",
        lab::bins::lvs_node().display(),
        cfg.display()
    ));
    let err = String::from_utf8_lossy(&user.stderr).into_owned();
    assert_eq!(user.status.code(), Some(1), "a non-root drain: {err}");
    assert!(
        err.contains("only root may use the control socket (this is uid 4321)"),
        "{err}"
    );
    let (code, body) = health(d, rs.ip, HTTP_PORT);
    assert_eq!(code, 200, "a non-root user drained the node: {body}");
    assert!(body.starts_with("state=up admin=ready"), "{body}");

    // A session on VIP:2811 that outlasts the timeout.
    let session = lab.client.ns.spawn(&format!(
        "socat -u TCP:{VIP}:2811,connect-timeout=3 SYSTEM:'sleep 300'"
    ));
    wait_for(Duration::from_secs(10), || {
        let o = rs.ok("ss -Htn state established '( sport = :2811 )' | grep -c . || true");
        (o.trim() != "0").then_some(())
    })
    .expect("no session on the VIP");
    let t0 = Instant::now();
    let out = lvs(&rs.ns, &cfg, "drain --reason test --wait --timeout 2s");
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "drain --wait --timeout: {err}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "gave up after {took:?}"
    );
    assert!(err.contains("waiting: 1 established session"), "{err}");
    assert!(err.contains("the node stays drained"), "{err}");
    let (code, body) = health(d, rs.ip, HTTP_PORT);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("state=drain admin=drain weight=0"),
        "the node must stay drained after the timeout: {body}"
    );
    assert_eq!(agent_line(d, rs.ip), "drain");
    lab.client.ns.kill(session);
}

#[test]
fn admin_state_persists_and_sighup_reloads() {
    let lab = DrLab::one_real("rld");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let d = &lab.director.ns;
    prepare_real_by_hand(rs);
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let sub = dir.join("rs0");
    // The node itself is listed too: start_agent waits for /health from the node.
    let allow = format!("allow = [\"{}\", \"{}\"]", lab.director.ip, rs.ip);
    let opts = |http_port| NodeOpts {
        http_port,
        report_extra: &allow,
        ..NodeOpts::default()
    };
    let cfg = write_config(rs, &sub, &opts(HTTP_PORT));
    let agent = start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(5)).expect("up");

    // Drain, restart the agent (SIGTERM keeps the VIPs): still drained.
    assert!(lvs(&rs.ns, &cfg, "drain --reason kernel-update")
        .status
        .success());
    rs.ns.signal(agent, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        rs.ns.wait(agent, Duration::from_secs(5)),
        Some(0),
        "agent did not stop cleanly on SIGTERM"
    );
    assert!(
        rs.ok("ip -o addr show dev lo").contains("192.0.2.100/32"),
        "SIGTERM removed the VIP"
    );
    let agent = start_agent(rs, &cfg, &dir.join("agent2.log"), HTTP_PORT);
    let (code, body) = health(d, rs.ip, HTTP_PORT);
    assert_eq!(code, 503);
    assert!(body.starts_with("state=drain admin=drain"), "{body}");
    let st = d.ok(&format!("curl -s http://{}:{HTTP_PORT}/status", rs.ip));
    assert!(st.contains("kernel-update"), "{st}");
    assert!(lvs(&rs.ns, &cfg, "resume").status.success());
    wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(3)).expect("up after resume");

    // SIGHUP: a new check and a new HTTP port apply without a restart.
    let new = node_toml(rs, &sub, &opts(8090))
        + "[[check]]\nname = \"xrd\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1094\"\ninterval = \"300ms\"\ntimeout = \"200ms\"\nfall = 1\n";
    std::fs::write(&cfg, new).unwrap();
    rs.ns.signal(agent, nix::sys::signal::Signal::SIGHUP);
    let (_, body) =
        wait_health(d, rs.ip, 8090, 503, Duration::from_secs(5)).expect("new port, new check");
    assert!(body.contains("xrd: connection refused"), "{body}");
    assert_eq!(health(d, rs.ip, HTTP_PORT).0, 0, "old port still open");
    // The running config, as the director sees it: the old port answers and the xrd check
    // (only in the running config) is still the reason.
    let still_in_force = |what: &str| {
        let (code, body) = health(d, rs.ip, 8090);
        assert_eq!(code, 503, "after {what}: old listener gone ({body})");
        assert!(
            body.contains("xrd: connection refused"),
            "after {what}: running config not in force: {body}"
        );
        assert_eq!(
            agent_line(d, rs.ip),
            "down ready #xrd: connection refused",
            "after {what}"
        );
        assert_eq!(
            rs.ns.wait(agent, Duration::from_millis(10)),
            None,
            "agent exited"
        );
    };
    // A broken config is refused and the running one kept.
    std::fs::write(&cfg, "interface = \"eth0\"\n[[check]]\nkind = \"nope\"\n").unwrap();
    rs.ns.signal(agent, nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    still_in_force("an invalid config");
    let st = d.ok(&format!("curl -s http://{}:8090/status", rs.ip));
    let v: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert!(
        v["reload_error"].is_string(),
        "reload error not shown: {st}"
    );

    // A config that validates but cannot bind (the new port is taken): nothing of it applies,
    // the old listeners keep answering, and the refusal shows in /status and /metrics.
    let holder = rs.ns.spawn(&format!(
        "socat TCP-LISTEN:8095,bind={},reuseaddr,fork /dev/null",
        rs.ip
    ));
    wait_for(Duration::from_secs(5), || {
        rs.ns
            .run(&format!("ss -Hltn 'sport = :8095' | grep -q {}", rs.ip))
            .status
            .success()
            .then_some(())
    })
    .expect("port holder not listening");
    let unbindable = node_toml(rs, &sub, &opts(8095))
        + "[[check]]\nname = \"other\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1095\"\ninterval = \"300ms\"\ntimeout = \"200ms\"\nfall = 1\n";
    std::fs::write(&cfg, unbindable).unwrap();
    rs.ns.signal(agent, nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(1000));
    still_in_force("a config that cannot bind");
    let st = d.ok(&format!("curl -s http://{}:8090/status", rs.ip));
    let v: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert!(
        v["reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot listen on report.http") && e.contains("8095")),
        "{st}"
    );
    assert!(
        !v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "other"),
        "a check of the refused config runs: {st}"
    );
    let m = d.ok(&format!("curl -s http://{}:8090/metrics", rs.ip));
    assert!(m.contains("lvs_realserver_config_reload_ok 0"), "{m}");
    // Once the port is free, the same SIGHUP applies it.
    rs.ns.kill(holder);
    rs.ns.signal(agent, nix::sys::signal::Signal::SIGHUP);
    wait_health(d, rs.ip, 8095, 503, Duration::from_secs(5)).expect("new port after retry");
    let m = d.ok(&format!("curl -s http://{}:8095/metrics", rs.ip));
    assert!(m.contains("lvs_realserver_config_reload_ok 1"), "{m}");
}

#[test]
fn endpoints_bound_slow_clients_and_connections() {
    let lab = DrLab::one_real("slw");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            // One source holds them all here: the per-source cap is as large as the total.
            report_extra: "max_connections = 20\nmax_per_source = 20",
            ..NodeOpts::default()
        },
    );
    let agent = start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    let script = dir.join("slow.py");
    std::fs::write(
        &script,
        format!(
            r#"
import socket, time
ip = "{ip}"
def req():
    x = socket.create_connection((ip, {HTTP_PORT}), timeout=3)
    x.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    return x.recv(200)
held = [socket.create_connection((ip, {HTTP_PORT})) for _ in range(20)]
held[0].sendall(b"GET /health HTTP/1.1\r\n")  # a slowloris head
time.sleep(0.3)
try:
    r = req()
    print("overflow answered" if r else "overflow refused (closed)", r[:20])
except OSError as e:
    print("overflow refused")
t = time.time()
for s in held:
    s.settimeout(15)
    try: s.recv(100)
    except OSError: pass
print("held closed after %.1f" % (time.time() - t))
print("after", req().split(b"\r\n")[0].decode())
"#,
            ip = rs.ip
        ),
    )
    .unwrap();
    let out = lab.director.ok(&format!("python3 {}", script.display()));
    eprintln!("{out}");
    assert!(out.contains("overflow refused"), "{out}");
    let secs: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("held closed after "))
        .and_then(|v| v.trim().parse().ok())
        .expect("held connections never closed");
    assert!(secs <= 7.0, "idle/slow connections held {secs}s");
    assert!(out.contains("after HTTP/1.1 503"), "{out}");
    // The agent stays small under this.
    // spawn() execs, so the PID is the agent itself.
    let kb: u64 = rs
        .ok(&format!("awk '/VmRSS/{{print $2}}' /proc/{agent}/status"))
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(kb > 0 && kb < 64 * 1024, "agent RSS {kb} KiB (debug build)");
}

/// READY=1 once the agent answers, then WATCHDOG=1 at least every half watchdog period
/// (systemd kills the service after a whole period without one), fed from the main loop:
/// when that loop hangs (the fault-injection hook `LVS_NODE_HANG_LOOP_AFTER_MS`) the pings
/// stop while the process lives on, so systemd would restart it.
#[test]
fn sd_notify_ready_and_watchdog() {
    const WATCHDOG: Duration = Duration::from_secs(1);
    const HANG_AFTER: Duration = Duration::from_secs(5);
    let lab = DrLab::one_real("sdn");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let cfg = write_config(rs, &dir.join("rs0"), &NodeOpts::default());
    let sock_path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = dir.join("agent.log");
    let t0 = Instant::now();
    let pid = rs.ns.spawn_logged(
        &format!(
            "env NOTIFY_SOCKET={} WATCHDOG_USEC={} LVS_NODE_HANG_LOOP_AFTER_MS={} {} -c {} run",
            sock_path.display(),
            WATCHDOG.as_micros(),
            HANG_AFTER.as_millis(),
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &log,
    );
    // Every message with its arrival time, until 4 watchdog periods after the hang.
    let mut got: Vec<(Duration, String)> = Vec::new();
    let mut buf = [0u8; 512];
    let mut answered = false;
    while t0.elapsed() < HANG_AFTER + 4 * WATCHDOG + Duration::from_secs(3) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push((t0.elapsed(), String::from_utf8_lossy(&buf[..n]).to_string()));
        }
        if !answered && !got.is_empty() {
            // By READY the agent already answers (it binds before notifying).
            assert_ne!(health(&lab.director.ns, rs.ip, HTTP_PORT).0, 0);
            answered = true;
        }
    }
    // Running or sleeping, not a zombie waiting to be reaped.
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    rs.ns.kill(pid);
    assert!(
        got.first().is_some_and(|m| m.1.contains("READY=1")),
        "{got:?}"
    );
    assert!(alive, "the agent exited instead of hanging:\n{text}");
    assert!(
        text.contains("injected fault: the main loop hangs"),
        "the hook did not fire (a build without fault-injection?):\n{text}"
    );
    let pings: Vec<Duration> = got
        .iter()
        .filter(|m| m.1.contains("WATCHDOG=1"))
        .map(|m| m.0)
        .collect();
    eprintln!("watchdog pings at {pings:?}");
    let last = *pings.last().expect("no WATCHDOG=1 at all");
    // Before the hang: a ping every half period (mean over the run, so one late wakeup on a
    // loaded machine does not decide), never a whole period without one.
    assert!(pings.len() >= 6, "{pings:?}");
    let mean = (last - pings[0]) / (pings.len() as u32 - 1);
    assert!(
        mean <= WATCHDOG / 2 + WATCHDOG / 20,
        "pings every {mean:?} on average; the watchdog is {WATCHDOG:?}, half is the most"
    );
    let gap = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap < WATCHDOG, "{gap:?} without a ping: {pings:?}");
    // The hang stops them: nothing in the last 4 periods, while the process lives.
    let end = got.last().map_or(last, |m| m.0).max(t0.elapsed());
    assert!(
        end - last >= 4 * WATCHDOG,
        "pings went on after the main loop hung: last at {last:?}, watched until {end:?}"
    );
}

/// The failures the seeds' TCP_CHECK cannot see: the shared file system unmounted or full,
/// and a host certificate about to expire. GridFTP keeps accepting connections throughout.
#[test]
fn filesystem_and_certificate_checks_catch_what_tcp_check_misses() {
    let lab = DrLab::one_real("fsc");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let d = &lab.director.ns;
    prepare_real_by_hand(rs);
    gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let cert = dir.join("hostcert.pem");
    let mkcert = |days: u32| {
        rs.ok(&format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days {days} \
             -subj /CN=rs0.lab -addext subjectAltName=DNS:gridftp.lab,DNS:rs0.lab \
             -keyout {k} -out {c} 2>/dev/null",
            k = dir.join("hostkey.pem").display(),
            c = cert.display()
        ));
    };
    mkcert(30);
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            extra: &format!(
                "[[check]]\nname = \"shared\"\nkind = \"filesystem\"\npath = \"{}\"\nmin_free = \"50%\"\ninterval = \"300ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 1\n\
                 [[check]]\nname = \"hostcert\"\nkind = \"certificate\"\ncert = \"{}\"\nmin_days = 7\ninterval = \"300ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 1\n",
                shared.display(),
                cert.display()
            ),
            ..NodeOpts::default()
        },
    );
    // The agent gets its own mount namespace with a small tmpfs as "the shared file system",
    // so the test never mounts anything on the host.
    let log = dir.join("agent.log");
    let agent = rs.ns.spawn_logged(
        &format!(
            "unshare -m sh -c 'mount -t tmpfs -o size=4m tmpfs {s} && exec {b} -c {c} run'",
            s = shared.display(),
            b = lab::bins::lvs_node().display(),
            c = cfg.display()
        ),
        &log,
    );
    let up = |what: &str| {
        wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "{what}: not up: {:?}\n{}",
                health(d, rs.ip, HTTP_PORT),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    };
    let down = |what: &str| {
        wait_health(d, rs.ip, HTTP_PORT, 503, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{what}: still {:?}", health(d, rs.ip, HTTP_PORT)))
            .1
    };
    let in_agent_mnt = |cmd: &str| rs.ok(&format!("nsenter -t {agent} -m sh -c '{cmd}'"));
    up("start");

    in_agent_mnt(&format!("umount {}", shared.display()));
    let body = down("unmounted");
    assert!(
        body.contains("shared:") && body.contains("is not a mount point"),
        "{body}"
    );
    in_agent_mnt(&format!(
        "mount -t tmpfs -o size=4m tmpfs {}",
        shared.display()
    ));
    up("remounted");

    in_agent_mnt(&format!(
        "dd if=/dev/zero of={}/fill bs=1M count=3 2>/dev/null",
        shared.display()
    ));
    let body = down("full");
    assert!(body.contains("free"), "{body}");
    in_agent_mnt(&format!("rm {}/fill", shared.display()));
    up("space freed");

    mkcert(3);
    let body = down("expiring cert");
    assert!(body.contains("hostcert: certificate expires in "), "{body}");
    mkcert(30);
    up("renewed cert");
    // Through all of this, a TCP_CHECK on 2811 would have passed.
    assert!(rs
        .ns
        .run("timeout 5 socat -T 1 -u TCP:127.0.0.1:2811,connect-timeout=1 - | head -c 3 | grep -q 220")
        .status
        .success());
}
