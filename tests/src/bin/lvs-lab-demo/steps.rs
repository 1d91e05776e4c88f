//! The demo's steps, in the order they run.

use super::*;

pub(crate) fn setup<'a>(
    r: &mut Report,
    lab: &'a Director,
    work: &Path,
    rotation: &'a Mutex<Vec<(Instant, Vec<usize>)>>,
) -> anyhow::Result<Demo<'a>> {
    r.heading(if lab.is_real() {
        "Build the lab: client, real director (IPVS + keepalived in a qemu guest), 3 real servers"
    } else {
        "Build the lab: client, director (nftables DR EMULATION + HAProxy), 3 real servers"
    });
    r.info(&format!(
        "namespaces {p}br (bridge), {p}cl (client {}), {}, {p}rs1..rs3 (real servers {}..{})",
        lab.client().ip,
        lab.describe(),
        lab.reals()[0].ip,
        lab.reals()[lab.reals().len() - 1].ip,
        p = lab.prefix()
    ));
    r.info(&format!(
        "[X] below means `ip netns exec {}X`; $LAB = {}",
        lab.prefix(),
        work.display()
    ));
    let data = work.join("data");
    std::fs::create_dir_all(work.join("client"))?;
    let mut nodes = Vec::new();
    for (i, h) in lab.reals().iter().enumerate() {
        let name = format!("rs{}", i + 1);
        let dir = work.join(&name);
        std::fs::create_dir_all(&dir)?;
        let method = ARP_METHODS[i % ARP_METHODS.len()];
        let cfg = dir.join("node.toml");
        std::fs::write(&cfg, node_toml(h, &dir, method))?;
        println!("\n  {name} ({}), ARP suppression by {method}:", h.ip);
        let up = format!("{} -c {} up", lvs_node(), cfg.display());
        r.cmd(&name, &up);
        let o = h.ns.run(&up);
        r.out(&text(&o));
        r.check(
            o.status.success(),
            &format!("{name}: lvs-node up (VIP on lo, ARP suppressed)"),
        );
        let gcmd = format!(
            "globus-gridftp-server -aa -anonymous-user nobody -p 2811 -data-interface {} \
             -port-range 50000,50100 -Z $LAB/{name}/transfers1.log",
            h.ip
        );
        r.cmd(&name, &gcmd);
        let g = {
            let _l = LAB_LOCK.lock().unwrap();
            track(gridftp::start_with(
                &h.ns,
                h.ip,
                &format!("{name}.lab"),
                &dir.join("gridftp1.log"),
                &format!("-Z {}", dir.join("transfers1.log").display()),
            ))
        };
        let run = format!("{} -c {} -v run", lvs_node(), cfg.display());
        r.cmd(&name, &format!("{run} &"));
        {
            let _l = LAB_LOCK.lock().unwrap();
            track(h.ns.spawn_logged(&run, &dir.join("agent.log")));
        }
        nodes.push(Node {
            host: h,
            name,
            dir,
            cfg,
            gridftp: g,
            starts: 1,
        });
    }
    println!();
    for n in &nodes {
        let up = wait_for(Duration::from_secs(30), || {
            let h = health(lab, n.host.ip);
            (h.0 == 200).then_some(h)
        });
        r.cmd(
            lab.observer_role(),
            &format!("curl -s http://{}:{HTTP_PORT}/health", n.host.ip),
        );
        match up {
            Some((_, body)) => {
                r.out(&body);
                r.check(true, &format!("{}: agent reports up", n.name));
            }
            None => {
                r.out(&std::fs::read_to_string(n.dir.join("agent.log")).unwrap_or_default());
                r.check(false, &format!("{}: agent never reported up", n.name));
            }
        }
    }
    let servers: Vec<Server> = nodes
        .iter()
        .map(|n| Server {
            name: n.name.clone(),
            addr: format!("{}:2811", n.host.ip),
            agent_addr: n.host.ip.to_string(),
            agent_port: AGENT_PORT,
        })
        .collect();
    let hdir = work.join("haproxy");
    let hap = {
        let _l = LAB_LOCK.lock().unwrap();
        let h = Haproxy::start(lab.observer(), &hdir, &servers);
        track(h.pid);
        h
    };
    r.info("HAProxy on the director, one agent-checked server per node:");
    let cfgtext = std::fs::read_to_string(hdir.join("haproxy.cfg"))?;
    r.out(
        &cfgtext
            .lines()
            .filter(|l| l.trim_start().starts_with("server "))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    for n in &nodes {
        // "UP 1/3" is HAProxy's state before the first checks confirm the server.
        let st = wait_for(Duration::from_secs(30), || {
            hap.server(lab.observer(), &n.name)
                .filter(|(s, w)| s == "UP" && *w == 100)
        });
        r.check(
            st.is_some(),
            &format!(
                "HAProxy: {} {}",
                n.name,
                st.map(|s| format!("{} weight {}", s.0, s.1))
                    .unwrap_or_else(|| format!("not UP: {}", n.name))
            ),
        );
    }
    if let Some(dir) = lab.ipvs() {
        let cfgs: Vec<PathBuf> = nodes.iter().map(|n| n.cfg.clone()).collect();
        let conf = keepalived_for(&cfgs)?;
        r.info("keepalived on the real director: every node's `lvs-node director-config` stanza");
        r.info("(HTTP_GET on /health, inhibit_on_failure; delay_loop 0.5 s, retry 0):");
        r.out(
            &conf
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .take(32)
                .collect::<Vec<_>>()
                .join("\n"),
        );
        dir.load_keepalived(&conf)?;
        dir.start_table_watch(50)?;
        let want: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}:2811", n.host.ip))
            .collect();
        let all_in = wait_for(Duration::from_secs(30), || {
            let t = dir.table();
            want.iter()
                .all(|a| {
                    t.iter()
                        .flat_map(|s| s.reals.iter())
                        .any(|x| &x.addr == a && x.weight == 100)
                })
                .then_some(())
        });
        r.cmd("director guest", "ipvsadm -Ln");
        r.out(&dir.ipvsadm_ln());
        r.check(
            all_in.is_some(),
            "IPVS: every node in the table with weight 100 (keepalived's HTTP_GET passed)",
        );
    }
    Ok(Demo {
        lab,
        work: work.to_path_buf(),
        data,
        nodes,
        hap,
        rotation,
        files: 0,
    })
}

pub(crate) fn step_arp(r: &mut Report, d: &Demo) {
    r.heading("ARP for the VIP is answered only by the director");
    let cmd = format!("arping -c 2 -w 2 -I eth0 {VIP}");
    r.cmd("cl", &cmd);
    let o = d.lab.client().ns.run(&cmd);
    r.out(&String::from_utf8_lossy(&o.stdout));
    let macs = d.lab.arp_answers(&VIP.to_string());
    r.info(&format!(
        "director eth0 {} | rs1..rs3 eth0 {}",
        d.lab.director_mac(),
        d.lab
            .reals()
            .iter()
            .map(|h| h.mac.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    for n in &d.nodes {
        let o = n
            .host
            .ns
            .run(&format!("ip -o addr show dev lo | grep {VIP}"));
        r.cmd(&n.name, &format!("ip -o addr show dev lo | grep {VIP}"));
        r.out(&String::from_utf8_lossy(&o.stdout));
    }
    r.check(
        d.nodes.iter().all(|n| {
            n.host
                .ns
                .run(&format!("ip -o addr show dev lo | grep -q ' {VIP}/32'"))
                .status
                .success()
        }),
        "every real server holds the VIP on lo",
    );
    r.check(
        macs == vec![d.lab.director_mac()],
        &format!(
            "one MAC answers, the director's: {}",
            if macs.is_empty() {
                "(none)".into()
            } else {
                macs.join(" ")
            }
        ),
    );
    r.end_step();
}

pub(crate) fn step_spread(r: &mut Report, d: &mut Demo) {
    r.heading("Files fetched through the VIP with globus-url-copy, spread over the nodes");
    r.info("The pool's files are identical on every node (shared storage); each node's");
    r.info("GridFTP transfer log (-Z) tells which node served a file.");
    let mut count = BTreeMap::new();
    let mut intact = true;
    for k in 0..6 {
        let (by, ok) = d.fetch(r, 1 << 20, k == 0);
        intact &= ok;
        if let Some(i) = by {
            *count.entry(i).or_insert(0) += 1;
        }
    }
    let spread: Vec<String> = (0..d.nodes.len())
        .map(|i| format!("{} {}", d.nodes[i].name, count.get(&i).unwrap_or(&0)))
        .collect();
    r.info(&format!("transfers per node: {}", spread.join(", ")));
    r.check(
        intact,
        "6 of 6 transfers complete, checksums match the source",
    );
    r.check(
        count.len() == d.nodes.len(),
        "every node served transfers (the director balances 2811 per connection)",
    );
    r.end_step();
}

pub(crate) fn step_kill(r: &mut Report, d: &mut Demo) {
    r.heading("One GridFTP killed: dropped from rotation in about a second");
    let v = 1;
    let ip = d.nodes[v].host.ip;
    let name = d.nodes[v].name.clone();
    r.cmd(
        &name,
        &format!("kill {}   # globus-gridftp-server", d.nodes[v].gridftp),
    );
    let t0 = Instant::now();
    d.nodes[v].host.ns.kill(d.nodes[v].gridftp);
    let (mut t_health, mut t_hap, mut body) = (None, None, String::new());
    let _ = wait_for(Duration::from_secs(5), || {
        if t_health.is_none() {
            let h = health(d.lab, ip);
            if h.0 == 503 {
                t_health = Some(t0.elapsed());
                body = h.1;
            }
        }
        if t_hap.is_none()
            && d.hap
                .server(d.lab.observer(), &name)
                .is_some_and(|s| s.0.starts_with("DOWN"))
        {
            t_hap = Some(t0.elapsed());
        }
        (t_health.is_some() && t_hap.is_some()).then_some(())
    });
    let t_rot = d
        .wait_rotation(|x| !x.contains(&v), Duration::from_secs(3))
        .map(|t| t.saturating_duration_since(t0));
    let bound = if d.lab.is_real() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(1)
    };
    let ms = |t: Option<Duration>| {
        t.map(|t| format!("{:>4} ms", t.as_millis()))
            .unwrap_or_else(|| "never".into())
    };
    r.cmd(
        d.lab.observer_role(),
        &format!("curl -s http://{ip}:{HTTP_PORT}/health"),
    );
    r.out(&body);
    r.info(&format!("/health 503 after           {}", ms(t_health)));
    r.info(&format!("HAProxy {name} DOWN after     {}", ms(t_hap)));
    r.info(&format!("out of the DR table after   {}", ms(t_rot)));
    d.show_rotation(r);
    r.check(
        t_health.is_some() && body.contains("gridftp"),
        "the agent reports 503 with the reason",
    );
    r.check(t_hap.is_some(), "HAProxy marks the node DOWN");
    r.check(
        t_rot.is_some_and(|t| t <= bound),
        &format!(
            "dropped from rotation within {} ({})",
            if d.lab.is_real() {
                "2 s (real director: keepalived HTTP_GET, delay_loop 0.5 s, no retry)"
            } else {
                "a second"
            },
            ms(t_rot)
        ),
    );
    r.info("New transfers through the VIP:");
    let mut ok = true;
    let mut on_victim = 0;
    for k in 0..4 {
        let (by, good) = d.fetch(r, 512 << 10, k == 0);
        ok &= good;
        if by == Some(v) {
            on_victim += 1;
        }
    }
    r.check(ok, "4 of 4 transfers complete and intact");
    r.check(on_victim == 0, &format!("none landed on {name}"));

    // Back: restart GridFTP; the node returns after `rise` good checks.
    let n = &mut d.nodes[v];
    n.starts += 1;
    let k = n.starts;
    r.cmd(
        &name,
        &format!("globus-gridftp-server ... -Z $LAB/{name}/transfers{k}.log   # restarted"),
    );
    let t1 = Instant::now();
    n.gridftp = {
        let _l = LAB_LOCK.lock().unwrap();
        track(gridftp::start_with(
            &n.host.ns,
            n.host.ip,
            &format!("{name}.lab"),
            &n.dir.join(format!("gridftp{k}.log")),
            &format!("-Z {}", n.dir.join(format!("transfers{k}.log")).display()),
        ))
    };
    let back = d
        .wait_rotation(|x| x.contains(&v), Duration::from_secs(5))
        .map(|t| t.saturating_duration_since(t1));
    d.show_rotation(r);
    r.check(
        back.is_some(),
        &format!("{name} back in rotation {} after the restart", ms(back)),
    );
    r.end_step();
}

pub(crate) fn step_drain(r: &mut Report, d: &mut Demo) {
    r.heading("One node drained while a long transfer through the VIP finishes intact");
    let rate = "8mbit";
    for n in &d.nodes {
        let cmd = format!("tc qdisc add dev eth0 root tbf rate {rate} burst 32kbit latency 400ms");
        if n.name == "rs1" {
            r.cmd("rs1..rs3", &cmd);
        }
        n.host.ns.ok(&cmd);
    }
    let size = 5 << 20;
    d.files += 1;
    let big = format!("big{:02}.bin", d.files);
    let (src, sum) = gridftp::make_file(&d.data, &big, size);
    let dst = d.work.join("client").join(&big);
    let cmd = gridftp::url_copy_cmd(&VIP.to_string(), &src, &dst);
    r.cmd("cl", &format!("{cmd} &   # {} MiB at {rate}", size >> 20));
    let t0 = Instant::now();
    let copy = {
        let _l = LAB_LOCK.lock().unwrap();
        track(
            d.lab
                .client()
                .ns
                .spawn_logged(&cmd, &d.work.join("client").join("long-copy.log")),
        )
    };
    // The node whose VIP:2811 holds the control session serves the transfer (the agent's
    // own GridFTP check uses 127.0.0.1:2811, so look for the VIP).
    let x = wait_for(Duration::from_secs(10), || {
        d.nodes.iter().position(|n| {
            let o = n.host.ns.run(&format!(
                "ss -Htn state established '( sport = :2811 )' | grep -cF '{VIP}'"
            ));
            String::from_utf8_lossy(&o.stdout).trim() != "0"
        })
    });
    let Some(x) = x else {
        r.check(false, "the long transfer started");
        let _ = d.lab.client().ns.wait(copy, Duration::from_secs(1));
        r.end_step();
        return;
    };
    let name = d.nodes[x].name.clone();
    let ss = format!("ss -Htn state established '( sport = :2811 )' | grep -F {VIP}");
    r.cmd(&name, &ss);
    r.out(&String::from_utf8_lossy(
        &d.nodes[x].host.ns.run(&ss).stdout,
    ));
    std::thread::sleep(Duration::from_millis(300));
    let drain = format!(
        "{} -c {} drain --reason demo --wait --timeout 60s",
        lvs_node(),
        d.nodes[x].cfg.display()
    );
    r.cmd(&name, &drain);
    let td0 = Instant::now();
    let dlog = d.nodes[x].dir.join("drain.log");
    let dpid = {
        let _l = LAB_LOCK.lock().unwrap();
        track(d.nodes[x].host.ns.spawn_logged(&drain, &dlog))
    };
    let hap = d.hap.wait_server(
        d.lab.observer(),
        &name,
        "DRAIN",
        None,
        Duration::from_secs(5),
    );
    let out = d
        .wait_rotation(|v| !v.contains(&x), Duration::from_secs(5))
        .map(|t| t.saturating_duration_since(td0));
    let (code, body) = health(d.lab, d.nodes[x].host.ip);
    r.cmd(
        "dir",
        &format!("curl -s http://{}:{HTTP_PORT}/health", d.nodes[x].host.ip),
    );
    r.out(&format!("{code} {body}"));
    d.show_rotation(r);
    r.check(
        hap.is_ok() && out.is_some(),
        &format!(
            "{name} drained: HAProxy DRAIN, out of the DR table after {} ms",
            out.map(|t| t.as_millis()).unwrap_or(0)
        ),
    );
    r.info("New transfers while the long one runs:");
    let mut ok = true;
    let mut on_x = 0;
    for k in 0..3 {
        let (by, good) = d.fetch(r, 256 << 10, k == 0);
        ok &= good;
        if by == Some(x) {
            on_x += 1;
        }
    }
    r.check(ok, "3 of 3 new transfers complete and intact");
    r.check(on_x == 0, &format!("none landed on the drained {name}"));
    // Wait for both the transfer and `drain --wait`.
    let (mut copy_done, mut drain_done) = (None, None);
    // `drain --wait` ends when the node's session closes; the client process exits a moment
    // later (its own teardown). So when drain ends first, the file must already be whole.
    let src_len = std::fs::metadata(&src).map(|m| m.len()).ok();
    let mut whole_at_drain = false;
    while (copy_done.is_none() || drain_done.is_none()) && t0.elapsed() < Duration::from_secs(60) {
        if copy_done.is_none() {
            if let Some(c) = d.lab.client().ns.wait(copy, Duration::from_millis(5)) {
                copy_done = Some((Instant::now(), c));
            }
        }
        if drain_done.is_none() {
            if let Some(c) = d.nodes[x].host.ns.wait(dpid, Duration::from_millis(5)) {
                drain_done = Some((Instant::now(), c));
                whole_at_drain = std::fs::metadata(&dst).map(|m| m.len()).ok() == src_len;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    r.info(&format!("lvs-node drain --wait output ({name}):"));
    let dtext = std::fs::read_to_string(&dlog).unwrap_or_default();
    let lines: Vec<&str> = dtext.lines().collect();
    // The progress lines repeat; show the first and the last few.
    let shown: Vec<&str> = if lines.len() > 6 {
        let mut v = lines[..2].to_vec();
        v.push("...");
        v.extend_from_slice(&lines[lines.len() - 3..]);
        v
    } else {
        lines
    };
    r.out(&shown.join("\n"));
    let got = if dst.exists() {
        gridftp::sha256(&dst)
    } else {
        String::new()
    };
    let served = d.served_by(&src);
    match copy_done {
        Some((t, c)) => r.info(&format!(
            "long transfer exit {c} after {:.1} s, served by {}, sha256 {}…",
            (t - t0).as_secs_f64(),
            served
                .map(|i| d.nodes[i].name.clone())
                .unwrap_or_else(|| "?".into()),
            got.get(..12).unwrap_or("")
        )),
        None => r.info("long transfer did not finish"),
    }
    r.check(
        copy_done.is_some_and(|c| c.1 == 0) && got == sum && served == Some(x),
        &format!("the long transfer finished intact on {name} (checksum matches)"),
    );
    r.check(
        matches!((copy_done, drain_done), (Some((tc, _)), Some((td, 0))) if td >= tc || whole_at_drain),
        "drain --wait returned 0 only after the transfer ended (the file was whole)",
    );
    for n in &d.nodes {
        n.host.ns.ok("tc qdisc del dev eth0 root");
    }
    let resume = format!("{} -c {} resume", lvs_node(), d.nodes[x].cfg.display());
    r.cmd(&name, &resume);
    let o = d.nodes[x].host.ns.run(&resume);
    r.out(&text(&o));
    let back = d.wait_rotation(|v| v.contains(&x), Duration::from_secs(5));
    d.show_rotation(r);
    r.check(
        o.status.success() && back.is_some(),
        &format!("{name} resumed and back in rotation"),
    );
    r.end_step();
}
