//! up/down semantics in the lab: DR traffic, idempotence, dry-run, rollback, crash
//! recovery, drift status, config changes and address flags.

use lab::dr::{DrLab, LabOpts, VIP, VIP6};
use lab::node::{lvs_node, lvs_node_env, lvs_node_ok, snapshot, write_config, Workdir};

fn cfg_v4(method: &str, device: &str) -> String {
    format!("[arp]\nmethod = \"{method}\"\n[[vip]]\naddress = \"{VIP}\"\ndevice = \"{device}\"\nports = [2811]\n")
}

#[test]
fn dr_traffic_is_answered_by_real_servers_from_the_vip() {
    let lab = DrLab::build(
        "drtraffic",
        LabOpts {
            reals: 2,
            ports: vec![2811],
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    for (i, rs) in lab.reals.iter().enumerate() {
        let cfg = write_config(&work, rs, &format!("rs{i}"), &cfg_v4("sysctl", "lo"));
        lvs_node_ok(rs, &cfg, "up");
        rs.ns.spawn(&format!(
            "socat TCP-LISTEN:2811,bind={VIP},fork,reuseaddr SYSTEM:'echo rs{i}'"
        ));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Every packet from VIP:2811 that reaches the client, with its source MAC.
    let cap_log = work.path().join("client.pcap.txt");
    let cap = lab.client.ns.spawn_logged(
        &format!("tcpdump -e -n -l -i eth0 'src host {VIP} and tcp src port 2811'"),
        &cap_log,
    );
    std::thread::sleep(std::time::Duration::from_millis(700));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let out = lab
            .client
            .ok(&format!("socat -T3 - TCP:{VIP}:2811 </dev/null"));
        seen.insert(out.trim().to_string());
    }
    assert_eq!(
        seen.len(),
        2,
        "both real servers answer through the director: {seen:?}"
    );
    // The client learned the VIP from the director only: its cache holds the director's
    // MAC for the VIP and no real server's.
    let neigh = lab.client.ok(&format!("ip neigh show {VIP}"));
    assert!(neigh.contains(&lab.director.mac), "{neigh}");
    for rs in &lab.reals {
        assert!(
            !neigh.contains(&rs.mac),
            "a real server answered ARP for the VIP: {neigh}"
        );
    }
    // The replies came straight from the real servers: every packet from VIP:2811 on the
    // client's wire has a real server's source MAC, never the director's, and both appear.
    std::thread::sleep(std::time::Duration::from_millis(300));
    lab.client.ns.kill(cap);
    let wire = std::fs::read_to_string(&cap_log).unwrap_or_default();
    let frames: Vec<&str> = wire.lines().filter(|l| l.contains(" > ")).collect();
    assert!(
        frames.len() >= 6,
        "no replies captured on the client:\n{wire}"
    );
    for f in &frames {
        let src = f.split_whitespace().nth(1).unwrap_or("");
        assert!(
            lab.reals.iter().any(|rs| rs.mac == src),
            "a reply from the VIP did not come from a real server's MAC: {f}"
        );
    }
    for rs in &lab.reals {
        assert!(
            frames
                .iter()
                .any(|f| f.split_whitespace().nth(1) == Some(rs.mac.as_str())),
            "no reply from {}:\n{wire}",
            rs.mac
        );
    }
}

#[test]
fn up_is_idempotent_and_dry_run_changes_nothing() {
    let lab = DrLab::build(
        "idem",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let cfg = write_config(&work, rs, "rs", &cfg_v4("arptables", "lo"));
    let before = snapshot(rs);
    let plan = lvs_node_ok(rs, &cfg, "up --dry-run");
    assert!(
        plan.contains("plan (") && plan.contains("add VIP 192.0.2.100/32 on lo"),
        "{plan}"
    );
    assert!(
        plan.find("arptables -A INPUT").unwrap() < plan.find("add VIP").unwrap(),
        "suppression first: {plan}"
    );
    assert_eq!(snapshot(rs), before, "dry-run changed the host");
    assert!(
        !work.path().join("rs-state/state.json").exists(),
        "dry-run wrote state"
    );
    lvs_node_ok(rs, &cfg, "up");
    let after_up = snapshot(rs);
    let again = lvs_node_ok(rs, &cfg, "up");
    assert!(again.contains("nothing changed"), "{again}");
    assert_eq!(snapshot(rs), after_up);
    let dry_down = lvs_node_ok(rs, &cfg, "down --dry-run");
    assert!(
        dry_down.find("remove VIP").unwrap() < dry_down.find("arptables -D").unwrap(),
        "VIPs go first: {dry_down}"
    );
    assert_eq!(snapshot(rs), after_up, "down --dry-run changed the host");
    lvs_node_ok(rs, &cfg, "down");
    let again = lvs_node_ok(rs, &cfg, "down");
    assert!(again.contains("nothing changed"), "{again}");
    assert_eq!(snapshot(rs), before);
}

/// The number of steps `lvs-node ARGS --dry-run` plans.
fn planned_steps(rs: &lab::dr::Host, cfg: &std::path::Path, args: &str) -> usize {
    let plan = lvs_node_ok(rs, cfg, &format!("{args} --dry-run"));
    plan.lines()
        .filter(|l| {
            l.trim_start()
                .split('.')
                .next()
                .is_some_and(|n| n.trim().parse::<usize>().is_ok())
        })
        .count()
}

#[test]
fn failure_at_every_step_rolls_back_this_run() {
    // Needs the `fault-injection` feature (tests/run.sh builds with it).
    let lab = DrLab::build(
        "rollback",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    for method in ["sysctl", "arptables", "nftables"] {
        let body = format!(
            "[arp]\nmethod = \"{method}\"\n[[vip]]\naddress = \"{VIP}\"\n[[vip]]\naddress = \"192.0.2.101\"\n"
        );
        let cfg = write_config(&work, rs, method, &body);
        let before = snapshot(rs);
        let n = planned_steps(rs, &cfg, "up");
        assert!(n >= 3, "{method}: {n} steps");
        for k in 1..=n {
            let out = lvs_node_env(rs, &cfg, "up", &format!("LVS_NODE_FAIL_AT_STEP={k}"));
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{method} step {k}: {err} (is lvs-node built with --features lvs-node/fault-injection, as tests/run.sh does?)"
            );
            assert!(err.contains("rolled back"), "{err}");
            assert_eq!(
                snapshot(rs),
                before,
                "{method}: rollback of a failure at step {k} of {n} left changes"
            );
        }
        // The same for `down`: every step fails in turn and the host stays up. A removed
        // address or arptables rule that the rollback puts back lands at the end of its
        // list (netlink and `arptables -A` cannot insert at a position), so the snapshot
        // is compared line by line as a set.
        let sorted = |s: String| {
            let mut l: Vec<String> = s.lines().map(str::to_string).collect();
            l.sort();
            l
        };
        lvs_node_ok(rs, &cfg, "up");
        let up = sorted(snapshot(rs));
        let n = planned_steps(rs, &cfg, "down");
        for k in 1..=n {
            let out = lvs_node_env(rs, &cfg, "down", &format!("LVS_NODE_FAIL_AT_STEP={k}"));
            assert_eq!(out.status.code(), Some(1), "{method} down step {k}");
            assert_eq!(
                sorted(snapshot(rs)),
                up,
                "{method}: failed down at step {k} of {n} left changes"
            );
        }
        lvs_node_ok(rs, &cfg, "down");
        assert_eq!(snapshot(rs), before);
    }
}

#[test]
fn a_crash_before_any_step_is_completed_by_down() {
    let lab = DrLab::build(
        "crashall",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let body = format!("[arp]\nmethod = \"arptables\"\n[[vip]]\naddress = \"{VIP}\"\n[[vip]]\naddress = \"192.0.2.101\"\n");
    let cfg = write_config(&work, rs, "rs", &body);
    let before = snapshot(rs);
    let n = planned_steps(rs, &cfg, "up");
    for k in 1..=n {
        let out = lvs_node_env(rs, &cfg, "up", &format!("LVS_NODE_CRASH_AT_STEP={k}"));
        assert_eq!(out.status.code(), Some(137), "crash before step {k}");
        lvs_node_ok(rs, &cfg, "down");
        assert_eq!(
            snapshot(rs),
            before,
            "down after a crash before step {k} of {n}"
        );
    }
}

/// The fault hooks exist only with the `fault-injection` feature: the lab binary has them
/// (the tests above prove it works), and no release build enables it: not the default
/// features, not the packaging scripts' cargo call.
/// The environment variables the `fault-injection` feature reads. A new hook must be added
/// here: the test fails on any other `"LVS_NODE_..."` literal in agent/src.
const FAULT_ENV: &[&str] = &[
    "LVS_NODE_FAIL_AT_STEP",
    "LVS_NODE_CRASH_AT_STEP",
    "LVS_NODE_HANG_LOOP_AFTER_MS",
    "LVS_NODE_HISTORY_STEP_MS",
];
/// `LVS_NODE_...` names every build reads.
const PRODUCT_ENV: &[&str] = &["LVS_NODE_CONFIG"];

/// Shell lines of `text` with backslash continuations joined and comment lines dropped.
fn shell_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in text.lines() {
        if cur.is_empty() && l.trim_start().starts_with('#') {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(head) => cur.push_str(head),
            None => {
                cur.push_str(l);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

/// Every `"LVS_NODE_..."` string literal in the Rust files under `dir`.
fn env_literals(dir: &std::path::Path, found: &mut std::collections::BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            env_literals(&p, found);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for (i, _) in text.match_indices("\"LVS_NODE_") {
                let name: String = text[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                found.insert(name);
            }
        }
    }
}

/// Which of the FAULT_ENV names the binary `bin` contains (`grep -a -o -F`: a byte scan of
/// a 100+ MB debug binary is too slow in an unoptimised test).
fn hook_names_in(bin: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut cmd = std::process::Command::new("grep");
    cmd.args(["-a", "-o", "-F"]);
    for n in FAULT_ENV {
        cmd.args(["-e", n]);
    }
    let out = cmd.arg(bin).output().expect("grep");
    // 0: found, 1: none; anything else is an error (e.g. an unreadable file).
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "grep {}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn fault_injection_is_kept_out_of_release_builds() {
    let root = lab::units::repo();
    let manifest = std::fs::read_to_string(root.join("agent/Cargo.toml")).unwrap();
    let default = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("default"))
        .unwrap_or("");
    assert!(!default.contains("fault-injection"), "{default}");

    // Every cargo invocation of the packaging scripts (and the spec file): no feature flag,
    // and nothing anywhere in them turns the feature on (a flag in a variable, RUSTFLAGS).
    let mut invocations = Vec::new();
    for e in std::fs::read_dir(root.join("packaging")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".sh") || name.ends_with(".spec")) {
            continue;
        }
        for line in shell_lines(&std::fs::read_to_string(&p).unwrap()) {
            assert!(
                !line.contains("fault-injection") && !line.contains("features"),
                "packaging/{name} turns on a cargo feature: {line}"
            );
            let words: Vec<&str> = line.split_whitespace().collect();
            for w in words.windows(2) {
                if w[0].trim_start_matches('(') == "cargo" {
                    assert!(
                        !words.iter().any(|a| *a == "-F" || a.starts_with("-F")),
                        "packaging/{name}: {line}"
                    );
                    invocations.push(format!("{name}: cargo {}", w[1]));
                }
            }
        }
    }
    eprintln!("cargo invocations in packaging/: {invocations:#?}");
    for want in ["build-static.sh: cargo build", "common.sh: cargo build"] {
        assert!(
            invocations.iter().any(|i| i == want),
            "{want} not found (the scan is blind): {invocations:?}"
        );
    }

    // The hooks' names: every LVS_NODE_ literal in the agent is either a product name or a
    // listed hook, and every listed hook still exists.
    let mut found = std::collections::BTreeSet::new();
    env_literals(&root.join("agent/src"), &mut found);
    for name in &found {
        assert!(
            FAULT_ENV.contains(&name.as_str()) || PRODUCT_ENV.contains(&name.as_str()),
            "agent/src reads {name}: list it in FAULT_ENV (a fault hook) or PRODUCT_ENV"
        );
    }
    for name in FAULT_ENV {
        assert!(found.contains(*name), "{name} is no longer in agent/src");
    }

    // The lab binary (built with the feature) has every hook's name, so the scan below
    // would see them; the static binaries the packages ship (tests/run.sh builds them with
    // packaging/build-static.sh) have none.
    let in_lab = hook_names_in(&lab::bins::lvs_node());
    for name in FAULT_ENV {
        assert!(
            in_lab.contains(*name),
            "the lab binary lacks {name}: build with --features lvs-node/fault-injection (tests/run.sh)"
        );
    }
    for bin in ["lvs-node", "lvs-cert"] {
        let path = lab::bins::static_bin(bin);
        let found = hook_names_in(&path);
        assert!(
            found.is_empty(),
            "{} (the packaged build) contains the fault hooks {found:?}",
            path.display()
        );
    }
}

#[test]
fn crash_between_steps_is_completed_by_next_up_or_down() {
    let lab = DrLab::build(
        "crash",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let body = format!("[arp]\nmethod = \"arptables\"\n[[vip]]\naddress = \"{VIP}\"\n[[vip]]\naddress = \"192.0.2.101\"\n");
    let cfg = write_config(&work, rs, "rs", &body);
    let before = snapshot(rs);
    // Crash after the suppression and the first VIP: the next `down` must still clean up.
    let out = lvs_node_env(rs, &cfg, "up", "LVS_NODE_CRASH_AT_STEP=6");
    assert_eq!(out.status.code(), Some(137));
    assert_ne!(snapshot(rs), before);
    lvs_node_ok(rs, &cfg, "down");
    assert_eq!(
        snapshot(rs),
        before,
        "down after a crash must restore the host"
    );
    // A crash, then `up` completes the run.
    let out = lvs_node_env(rs, &cfg, "up", "LVS_NODE_CRASH_AT_STEP=2");
    assert_eq!(out.status.code(), Some(137));
    let st = lvs_node(rs, &cfg, "status");
    assert_eq!(
        st.status.code(),
        Some(3),
        "status must report drift after a crash"
    );
    lvs_node_ok(rs, &cfg, "up");
    assert_eq!(lvs_node(rs, &cfg, "status").status.code(), Some(0));
    lvs_node_ok(rs, &cfg, "down");
    assert_eq!(snapshot(rs), before);
}

#[test]
fn status_reports_drift_and_json() {
    let lab = DrLab::build(
        "status",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let cfg = write_config(&work, rs, "rs", &cfg_v4("nftables", "lo"));
    assert_eq!(
        lvs_node(rs, &cfg, "status").status.code(),
        Some(3),
        "not up yet"
    );
    lvs_node_ok(rs, &cfg, "up");
    let js = lvs_node_ok(rs, &cfg, "status --json");
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["converged"], true);
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"vip") && kinds.contains(&"nftables"),
        "{kinds:?}"
    );
    rs.ok(&format!("ip addr del {VIP}/32 dev lo"));
    let out = lvs_node(rs, &cfg, "status");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("absent"));
    rs.ok("nft delete table arp lvs_node");
    let v: serde_json::Value =
        serde_json::from_slice(&lvs_node(rs, &cfg, "status --json").stdout).unwrap();
    assert_eq!(v["converged"], false);
    lvs_node_ok(rs, &cfg, "up");
    assert_eq!(lvs_node(rs, &cfg, "status").status.code(), Some(0));
    lvs_node_ok(rs, &cfg, "down");
}

#[test]
fn config_change_removes_stale_vips_and_method() {
    let lab = DrLab::build(
        "stale",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let before = snapshot(rs);
    let two = format!("[arp]\nmethod = \"arptables\"\n[[vip]]\naddress = \"{VIP}\"\n[[vip]]\naddress = \"192.0.2.101\"\n");
    let cfg = write_config(&work, rs, "rs", &two);
    lvs_node_ok(rs, &cfg, "up");
    // Same state_dir, one VIP fewer and another method: the stale VIP and rules go.
    let one = format!("[arp]\nmethod = \"sysctl\"\n[[vip]]\naddress = \"{VIP}\"\n");
    let cfg = write_config(&work, rs, "rs", &one);
    let out = lvs_node_ok(rs, &cfg, "up");
    assert!(out.contains("remove VIP 192.0.2.101/32"), "{out}");
    assert!(!rs.ok("ip -o addr show dev lo").contains("192.0.2.101"));
    assert!(
        !rs.ok("arptables-save").contains("192.0.2.1"),
        "stale arptables rules left"
    );
    assert_eq!(lvs_node(rs, &cfg, "status").status.code(), Some(0));
    lvs_node_ok(rs, &cfg, "down");
    assert_eq!(snapshot(rs), before);
}

#[test]
fn ipv6_vip_is_nodad_and_deprecated_and_never_a_source() {
    let lab = DrLab::build(
        "ipv6",
        LabOpts {
            reals: 1,
            ipv6: true,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let body = format!("[[vip]]\naddress = \"{VIP6}\"\n[[vip]]\naddress = \"{VIP}\"\n");
    let cfg = write_config(&work, rs, "rs", &body);
    lvs_node_ok(rs, &cfg, "up");
    let a = rs.ok("ip -6 addr show dev lo");
    assert!(a.contains("2001:db8::100/128"), "{a}");
    assert!(a.contains("nodad"), "IPv6 VIP must be nodad: {a}");
    assert!(
        a.contains("deprecated") && a.contains("preferred_lft 0sec"),
        "IPv6 VIP must have preferred_lft 0: {a}"
    );
    let r = rs.ok("ip -6 route get 2001:db8::1");
    assert!(
        !r.contains("src 2001:db8::100"),
        "host traffic must not leave from the VIP: {r}"
    );
    let r4 = rs.ok("ip route get 192.0.2.1");
    assert!(r4.contains("src 192.0.2.11"), "{r4}");
    assert_eq!(lvs_node(rs, &cfg, "status").status.code(), Some(0));
    // Someone re-adds the VIP without our flags: status sees it, up fixes it in place.
    rs.ok("ip -6 addr del 2001:db8::100/128 dev lo && ip -6 addr add 2001:db8::100/128 dev lo");
    assert_eq!(lvs_node(rs, &cfg, "status").status.code(), Some(3));
    lvs_node_ok(rs, &cfg, "up");
    assert!(rs
        .ok("ip -6 addr show dev lo")
        .contains("preferred_lft 0sec"));
    lvs_node_ok(rs, &cfg, "down");
    assert!(!rs.ok("ip -6 addr show dev lo").contains("2001:db8::100"));
}

#[test]
fn ipv4_vip_on_nic_is_never_the_source() {
    let lab = DrLab::build(
        "nicsrc",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    rs.ok("ip route add default via 192.0.2.2");
    let body = format!("[arp]\nmethod = \"arptables\"\n[[vip]]\naddress = \"{VIP}\"\ndevice = \"eth0\"\n[[vip]]\naddress = \"192.0.2.101/24\"\ndevice = \"eth0\"\n");
    let cfg = write_config(&work, rs, "rs", &body);
    lvs_node_ok(rs, &cfg, "up");
    let a = rs.ok("ip -o -4 addr show dev eth0");
    assert!(
        a.find("192.0.2.11/24").unwrap() < a.find("192.0.2.100/32").unwrap(),
        "real IP stays first: {a}"
    );
    // Both VIPs are noprefixroute: neither installs a route whose source would be a VIP.
    for line in a.lines().filter(|l| l.contains("192.0.2.10")) {
        assert!(line.contains("noprefixroute"), "{line}");
    }
    let routes = rs.ok("ip -4 route show table all");
    for v in ["192.0.2.100", "192.0.2.101"] {
        assert!(
            !routes
                .lines()
                .any(|l| l.contains(&format!("src {v}")) && !l.starts_with("local")),
            "a route leaves from the VIP {v}:\n{routes}"
        );
    }
    for dst in ["192.0.2.1", "198.51.100.7"] {
        let r = rs.ok(&format!("ip route get {dst}"));
        assert!(r.contains("src 192.0.2.11"), "{dst}: {r}");
    }
    // A real connection from the node: the client sees it come from the real IP.
    lab.client
        .ns
        .spawn("socat TCP-LISTEN:7000,reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR'");
    let peer = lab::wait_for(std::time::Duration::from_secs(5), || {
        let o = rs.ns.run("socat -T2 - TCP:192.0.2.1:7000 </dev/null");
        let t = String::from_utf8_lossy(&o.stdout).trim().to_string();
        (!t.is_empty()).then_some(t)
    })
    .expect("no answer from the client");
    assert_eq!(
        peer, "192.0.2.11",
        "the node's own connection left from {peer}"
    );
    lvs_node_ok(rs, &cfg, "down");
}

#[test]
fn arptables_rules_are_recognised_when_the_real_ip_has_a_hosts_name() {
    // GridFTP nodes name their real IP in /etc/hosts; arptables-save then prints the name
    // in `--mangle-ip-s`. Our own rule must still be recognised: no duplicates, no drift.
    let lab = DrLab::build(
        "arphosts",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    rs.ns.write_etc(
        "hosts",
        "127.0.0.1 localhost\n192.0.2.11 rs1.lab rs1\n192.0.2.100 gridftp.lab\n",
    );
    let before = snapshot(rs);
    let cfg = write_config(&work, rs, "rs", &cfg_v4("arptables", "lo"));
    lvs_node_ok(rs, &cfg, "up");
    let again = lvs_node_ok(rs, &cfg, "up");
    assert!(again.contains("nothing changed"), "{again}");
    assert_eq!(lvs_node(rs, &cfg, "status").status.code(), Some(0));
    let rules = rs.ok("arptables -L -n");
    assert_eq!(rules.matches("--mangle-ip-s").count(), 1, "{rules}");
    lvs_node_ok(rs, &cfg, "down");
    assert_eq!(snapshot(rs), before);
}
