//! The one-command LVS-DR lab demo (`tests/demo.sh`): a client, a director (nftables DR
//! emulation driven by a real HAProxy reading the nodes' agent-checks) and three real
//! servers running real globus-gridftp-server and `lvs-node run`, all in network
//! namespaces. It walks through the story step by step, prints a verdict per step, exits
//! non-zero if one fails, and tears everything down on exit, on error and on Ctrl-C.
//!
//! ```text
//! lvs-lab-demo [--keep] [--prefix P]   run the demo (--keep: leave the lab up)
//! lvs-lab-demo --teardown P            remove a lab left by --keep
//! ```

use lab::dr::{Host, VIP};
use lab::haproxy::{Haproxy, Server};
use lab::{gridftp, wait_for, DrLab, LabOpts};
use nix::sys::signal::{SigSet, Signal};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const HTTP_PORT: u16 = 8080;
const AGENT_PORT: u16 = 8081;
/// ARP suppression per node: one of each method, so the demo shows all three.
const ARP_METHODS: [&str; 3] = ["sysctl", "nftables", "arptables"];

/// Held while namespaces or processes are being created, so the signal handler never
/// tears down half of a creation.
static LAB_LOCK: Mutex<()> = Mutex::new(());
/// Processes the demo started (PIDs), killed by PID on a signal.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static PREFIX: OnceLock<String> = OnceLock::new();

fn track(pid: u32) -> u32 {
    PIDS.lock().unwrap().push(pid);
    pid
}

fn workdir_of(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-demo"))
}

// ---------------------------------------------------------------------------------------
// Output

struct Report {
    short: String,
    steps: Vec<(String, bool)>,
    ok: bool,
}

impl Report {
    fn heading(&mut self, title: &str) {
        let n = self.steps.len() + 1;
        println!("\n━━━ {n}. {title} ━━━");
        self.steps.push((title.to_string(), true));
        self.ok = true;
    }
    /// Prints a command as run in namespace `role` (`[role]` = `ip netns exec PREFIXrole`).
    fn cmd(&self, role: &str, cmd: &str) {
        println!("  [{role}]$ {}", cmd.replace(&self.short, "$LAB"));
    }
    fn out(&self, text: &str) {
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            println!("      {l}");
        }
    }
    fn info(&self, text: &str) {
        println!("  {text}");
    }
    fn check(&mut self, ok: bool, what: &str) -> bool {
        println!("  {} {what}", if ok { "✔" } else { "✘" });
        if !ok {
            self.ok = false;
            if let Some(s) = self.steps.last_mut() {
                s.1 = false;
            }
        }
        let _ = std::io::stdout().flush();
        ok
    }
    fn end_step(&self) {
        let (t, ok) = self.steps.last().unwrap();
        let n = self.steps.len();
        println!(
            "  ⇒ step {n} {}: {t}",
            if *ok { "✔ passed" } else { "✘ FAILED" }
        );
        let _ = std::io::stdout().flush();
    }
    fn failed(&self) -> bool {
        self.steps.iter().any(|s| !s.1)
    }
}

// ---------------------------------------------------------------------------------------
// The lab

struct Node<'a> {
    host: &'a Host,
    name: String,
    dir: PathBuf,
    cfg: PathBuf,
    gridftp: u32,
    starts: usize,
}

struct Demo<'a> {
    lab: &'a DrLab,
    work: PathBuf,
    data: PathBuf,
    nodes: Vec<Node<'a>>,
    hap: Haproxy,
    /// (when, rotation) each time the director's controller rewrote the DR table.
    rotation: &'a Mutex<Vec<(Instant, Vec<usize>)>>,
    files: usize,
}

fn node_toml(h: &Host, dir: &Path, method: &str) -> String {
    format!(
        "# lvs-node config of this lab node ({method} ARP suppression)\n\
         interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{dir}/state\"\n\n\
         [arp]\nmethod = \"{method}\"\n\n\
         [[vip]]\naddress = \"{VIP}\"\nports = [2811]\nhostname = \"gridftp.lab\"\n\n\
         [daemon]\ncontrol_socket = \"{dir}/control.sock\"\nrecheck_interval = \"1s\"\n\n\
         [[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"250ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 1\n\n\
         [report]\nhttp = \"{ip}:{HTTP_PORT}\"\nagent_check = \"{ip}:{AGENT_PORT}\"\nallow = [\"{dir_ip}\"]\n",
        ip = h.ip,
        dir = dir.display(),
        dir_ip = lab::dr::DIRECTOR_IP,
    )
}

fn lvs_node() -> String {
    lab::bins::lvs_node().display().to_string()
}

/// GET /health from the director: (status code, body).
fn health(lab: &DrLab, ip: impl std::fmt::Display) -> (u16, String) {
    let out = lab.director.ns.run(&format!(
        "curl -s -m 1 -w '\\n%{{http_code}}' http://{ip}:{HTTP_PORT}/health"
    ));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.trim().to_string())
}

fn names(idx: &[usize]) -> String {
    let v: Vec<String> = idx.iter().map(|i| format!("rs{}", i + 1)).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl<'a> Demo<'a> {
    fn node_log(&self, i: usize) -> String {
        let n = &self.nodes[i];
        (1..=n.starts)
            .map(|k| std::fs::read_to_string(n.dir.join(format!("transfers{k}.log"))))
            .filter_map(Result::ok)
            .collect()
    }

    /// Which node's GridFTP transfer log (`-Z`) names this file.
    fn served_by(&self, file: &Path) -> Option<usize> {
        let key = format!("FILE={} ", file.display());
        wait_for(Duration::from_secs(2), || {
            (0..self.nodes.len()).find(|&i| self.node_log(i).contains(&key))
        })
    }

    /// Fetches a fresh file through the VIP with globus-url-copy from the client; prints
    /// the command and the result. Returns (serving node, intact).
    fn fetch(&mut self, r: &mut Report, size: usize, show_cmd: bool) -> (Option<usize>, bool) {
        self.files += 1;
        let name = format!("file{:02}.bin", self.files);
        // A slightly different size per file gives every file its own content.
        let size = size + self.files * 1024;
        let (src, sum) = gridftp::make_file(&self.data, &name, size);
        let dst = self.work.join("client").join(&name);
        let cmd = gridftp::url_copy_cmd(&VIP.to_string(), &src, &dst);
        if show_cmd {
            r.cmd("cl", &cmd);
        }
        let t = Instant::now();
        let o = self
            .lab
            .client
            .ns
            .run(&format!("timeout 30 {cmd} && sha256sum {}", dst.display()));
        let took = t.elapsed();
        let got = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let intact = o.status.success() && got == sum;
        let by = if o.status.success() {
            self.served_by(&src)
        } else {
            None
        };
        let who = by.map(|i| self.nodes[i].name.clone());
        println!(
            "      {name} ({} KiB) {} in {:>4} ms, served by {:<4} sha256 {}…{}",
            size >> 10,
            if o.status.success() {
                "fetched"
            } else {
                "FAILED "
            },
            took.as_millis(),
            who.as_deref().unwrap_or("?"),
            &sum[..12],
            if intact {
                " = source ✔"
            } else {
                " ≠ source ✘"
            }
        );
        if !o.status.success() {
            r.out(&text(&o));
        }
        (by, intact)
    }

    fn hap_state(&self, i: usize) -> String {
        self.hap
            .server(&self.lab.director.ns, &self.nodes[i].name)
            .map(|(s, w)| format!("{s} weight {w}"))
            .unwrap_or_else(|| "?".into())
    }

    fn rotation_now(&self) -> Vec<usize> {
        self.rotation
            .lock()
            .unwrap()
            .last()
            .map(|r| r.1.clone())
            .unwrap_or_default()
    }

    /// Waits until the controller has set a rotation that satisfies `f`; returns when.
    fn wait_rotation(&self, f: impl Fn(&[usize]) -> bool, timeout: Duration) -> Option<Instant> {
        wait_for(timeout, || {
            let r = self.rotation.lock().unwrap();
            r.last().filter(|x| f(&x.1)).map(|x| x.0)
        })
    }

    fn show_rotation(&self, r: &Report) {
        let states: Vec<String> = (0..self.nodes.len())
            .map(|i| format!("{} {}", self.nodes[i].name, self.hap_state(i)))
            .collect();
        r.info(&format!("HAProxy (show stat): {}", states.join(" | ")));
        r.info(&format!(
            "director DR table: new connections → {}",
            names(&self.rotation_now())
        ));
    }
}

/// The director's control loop: HAProxy runs the agent-checks; every server it has UP is
/// in rotation, and the nftables DR table (the data path, IPVS's job on a real director)
/// is rewritten whenever that set changes. Established connections keep their server.
fn controller(
    lab: &DrLab,
    hap: &Haproxy,
    n: usize,
    rotation: &Mutex<Vec<(Instant, Vec<usize>)>>,
    stop: &AtomicBool,
) {
    let mut last: Vec<usize> = (0..n).collect();
    rotation
        .lock()
        .unwrap()
        .push((Instant::now(), last.clone()));
    while !stop.load(Ordering::SeqCst) {
        let states: Option<Vec<String>> = (0..n)
            .map(|i| {
                hap.server(&lab.director.ns, &format!("rs{}", i + 1))
                    .map(|s| s.0)
            })
            .collect();
        if let Some(states) = states {
            let up: Vec<usize> = (0..n).filter(|&i| states[i].starts_with("UP")).collect();
            if up != last {
                lab.set_backends(&up);
                rotation.lock().unwrap().push((Instant::now(), up.clone()));
                last = up;
            }
        }
        std::thread::sleep(Duration::from_millis(40));
    }
}

// ---------------------------------------------------------------------------------------
// Steps

fn setup<'a>(
    r: &mut Report,
    lab: &'a DrLab,
    work: &Path,
    rotation: &'a Mutex<Vec<(Instant, Vec<usize>)>>,
) -> anyhow::Result<Demo<'a>> {
    r.heading("Build the lab: client, director (nftables DR + HAProxy), 3 real servers");
    r.info(&format!(
        "namespaces {p}br (bridge), {p}cl (client {}), {p}dir (director {}, VIP {VIP} on eth0), \
         {p}rs1..rs3 (real servers {}..{})",
        lab.client.ip,
        lab.director.ip,
        lab.reals[0].ip,
        lab.reals[lab.reals.len() - 1].ip,
        p = lab.prefix
    ));
    r.info(&format!(
        "[X] below means `ip netns exec {}X`; $LAB = {}",
        lab.prefix,
        work.display()
    ));
    let data = work.join("data");
    std::fs::create_dir_all(work.join("client"))?;
    let mut nodes = Vec::new();
    for (i, h) in lab.reals.iter().enumerate() {
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
        let up = wait_for(Duration::from_secs(10), || {
            let h = health(lab, n.host.ip);
            (h.0 == 200).then_some(h)
        });
        r.cmd(
            "dir",
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
        let h = Haproxy::start(&lab.director.ns, &hdir, &servers);
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
        let st = wait_for(Duration::from_secs(10), || {
            hap.server(&lab.director.ns, &n.name)
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

fn step_arp(r: &mut Report, d: &Demo) {
    r.heading("ARP for the VIP is answered only by the director");
    let cmd = format!("arping -c 2 -w 2 -I eth0 {VIP}");
    r.cmd("cl", &cmd);
    let o = d.lab.client.ns.run(&cmd);
    r.out(&String::from_utf8_lossy(&o.stdout));
    let macs = d.lab.arp_answers(&VIP.to_string());
    r.info(&format!(
        "director eth0 {} | rs1..rs3 eth0 {}",
        d.lab.director.mac,
        d.lab
            .reals
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
        macs == vec![d.lab.director.mac.clone()],
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

fn step_spread(r: &mut Report, d: &mut Demo) {
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

fn step_kill(r: &mut Report, d: &mut Demo) {
    r.heading("One GridFTP killed: dropped from rotation within a second");
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
                .server(&d.lab.director.ns, &name)
                .is_some_and(|s| s.0.starts_with("DOWN"))
        {
            t_hap = Some(t0.elapsed());
        }
        (t_health.is_some() && t_hap.is_some()).then_some(())
    });
    let t_rot = d
        .wait_rotation(|x| !x.contains(&v), Duration::from_secs(3))
        .map(|t| t.saturating_duration_since(t0));
    let ms = |t: Option<Duration>| {
        t.map(|t| format!("{:>4} ms", t.as_millis()))
            .unwrap_or_else(|| "never".into())
    };
    r.cmd("dir", &format!("curl -s http://{ip}:{HTTP_PORT}/health"));
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
        t_rot.is_some_and(|t| t <= Duration::from_secs(1)),
        &format!("dropped from rotation within a second ({})", ms(t_rot)),
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

fn step_drain(r: &mut Report, d: &mut Demo) {
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
                .client
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
        let _ = d.lab.client.ns.wait(copy, Duration::from_secs(1));
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
        &d.lab.director.ns,
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
    while (copy_done.is_none() || drain_done.is_none()) && t0.elapsed() < Duration::from_secs(60) {
        if copy_done.is_none() {
            if let Some(c) = d.lab.client.ns.wait(copy, Duration::from_millis(5)) {
                copy_done = Some((Instant::now(), c));
            }
        }
        if drain_done.is_none() {
            if let Some(c) = d.nodes[x].host.ns.wait(dpid, Duration::from_millis(5)) {
                drain_done = Some((Instant::now(), c));
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
        matches!((copy_done, drain_done), (Some((tc, _)), Some((td, 0))) if td >= tc),
        "drain --wait returned 0 only after the transfer ended",
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

// ---------------------------------------------------------------------------------------
// Teardown

fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let o = Command::new("ip").args(["netns", "list"]).output();
    let text = o
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// Kills the given PIDs and every process inside the lab's namespaces (all started by the
/// demo), by PID, then deletes the namespaces, their /etc/netns files and the work dir.
fn teardown(prefix: &str, pids: &[u32]) -> usize {
    use nix::sys::signal::kill;
    use nix::sys::wait::{waitpid, WaitPidFlag};
    use nix::unistd::Pid;
    let nss = netns_with_prefix(prefix);
    let mut all: Vec<i32> = pids.iter().map(|&p| p as i32).collect();
    for ns in &nss {
        if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
            all.extend(
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    all.sort();
    all.dedup();
    let alive = |p: i32| {
        // Reap our own children; others simply vanish.
        let _ = waitpid(Pid::from_raw(p), Some(WaitPidFlag::WNOHANG));
        kill(Pid::from_raw(p), None).is_ok()
    };
    for &p in &all {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let _ = wait_for(Duration::from_secs(2), || {
        all.iter().all(|&p| !alive(p)).then_some(())
    });
    for &p in &all {
        if alive(p) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(p), None);
        }
    }
    for ns in &nss {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
    }
    let _ = std::fs::remove_dir_all(workdir_of(prefix));
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{prefix}-dir.nft")));
    nss.len()
}

/// SIGINT/SIGTERM: tear down from whatever state the demo is in, then exit 130.
fn install_signal_handler() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    // Blocked in every thread (inherited); std resets the mask in child processes.
    set.thread_block().expect("block signals");
    std::thread::spawn(move || {
        let sig = set.wait().unwrap_or(Signal::SIGTERM);
        println!("\n{sig} received: tearing the lab down");
        let _l = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prefix) = PREFIX.get() {
            let pids = PIDS.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let n = teardown(prefix, &pids);
            println!("removed {n} namespaces ({prefix}*) and the processes the demo started");
        }
        let _ = std::io::stdout().flush();
        std::process::exit(130);
    });
}

// ---------------------------------------------------------------------------------------

fn explore_help(d: &Demo, prefix: &str, exe: &str) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let p = prefix;
    let sock = d.hap.socket.display();
    let cfg1 = d.nodes[0].cfg.display();
    let _ = writeln!(o, "\nThe lab is up (--keep). Explore it:");
    let _ = writeln!(o, "  ip netns list | grep {p}");
    let _ = writeln!(o, "  ip netns exec {p}rs1 {} -c {cfg1} status", lvs_node());
    let _ =
        writeln!(o,
        "  ip netns exec {p}dir curl -s http://{}:{HTTP_PORT}/health    # also /status, /metrics",
        d.nodes[0].host.ip
    );
    let _ = writeln!(
        o,
        "  ip netns exec {p}dir socat -t 2 - TCP:{}:{AGENT_PORT}        # the agent-check line",
        d.nodes[0].host.ip
    );
    let _ = writeln!(
        o,
        "  echo 'show stat' | ip netns exec {p}dir socat - UNIX-CONNECT:{sock}"
    );
    let _ = writeln!(
        o,
        "  echo 'show servers state' | ip netns exec {p}dir socat - UNIX-CONNECT:{sock}"
    );
    let _ = writeln!(
        o,
        "  ip netns exec {p}dir nft list table netdev lvsdr     # the DR forwarding table"
    );
    let _ = writeln!(
        o,
        "  ip netns exec {p}cl globus-url-copy -nodcau ftp://{VIP}:2811{} file:///tmp/x.bin",
        d.data.join("file01.bin").display()
    );
    let _ = writeln!(o, "  ip netns exec {p}cl arping -c 2 -I eth0 {VIP}");
    let _ = writeln!(
        o,
        "  ip netns exec {p}rs1 {} -c {cfg1} drain --wait   # then: resume",
        lvs_node()
    );
    let _ = writeln!(o, "  logs and configs: {}", d.work.display());
    let _ = writeln!(
        o,
        "Note: the demo's director controller has exited, so the nft DR table keeps its last"
    );
    let _ = writeln!(
        o,
        "rotation ({}); HAProxy and the agents keep running.",
        names(&d.rotation_now())
    );
    let _ = writeln!(o, "\nTear it down afterwards with:");
    let _ = writeln!(
        o,
        "  tests/demo.sh --teardown {p}        (or: {exe} --teardown {p})"
    );
    let _ = writeln!(o, "or by hand:");
    let _ = writeln!(o,
        "  for ns in $(ip netns list | awk '/^{p}/{{print $1}}'); do ip netns pids $ns | xargs -r kill; ip netns del $ns; rm -rf /etc/netns/$ns; done"
    );
    let _ = writeln!(o, "  rm -rf {}", d.work.display());
    o
}

fn usage() -> ExitCode {
    eprintln!("usage: lvs-lab-demo [--keep] [--prefix P] | --teardown P");
    ExitCode::from(2)
}

fn valid_prefix(p: &str) -> bool {
    !p.is_empty() && p.len() <= 10 && p.chars().all(|c| c.is_ascii_alphanumeric())
}

fn main() -> ExitCode {
    let mut keep = false;
    let mut prefix = format!("lvd{}", std::process::id());
    let mut teardown_only = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keep" => keep = true,
            "--prefix" => match args.next() {
                Some(p) => prefix = p,
                None => return usage(),
            },
            "--teardown" => match args.next() {
                Some(p) => teardown_only = Some(p),
                None => return usage(),
            },
            "-h" | "--help" => {
                println!("usage: lvs-lab-demo [--keep] [--prefix P] | --teardown P");
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    lab::require_root();
    if let Some(p) = teardown_only {
        if !valid_prefix(&p) {
            eprintln!("--teardown: a lab prefix is 1-10 letters or digits, e.g. lvd12345");
            return ExitCode::from(2);
        }
        let n = teardown(&p, &[]);
        println!(
            "removed {n} namespaces ({p}*), their processes and {}",
            workdir_of(&p).display()
        );
        return ExitCode::SUCCESS;
    }
    if !valid_prefix(&prefix) {
        eprintln!("--prefix: 1-10 letters or digits");
        return ExitCode::from(2);
    }
    if !netns_with_prefix(&prefix).is_empty() {
        eprintln!("namespaces named {prefix}* exist already: `--teardown {prefix}` first");
        return ExitCode::from(2);
    }
    install_signal_handler();
    PREFIX.set(prefix.clone()).unwrap();
    let started = Instant::now();
    println!("LVS-DR GridFTP pool demo: lab {prefix}");
    let work = workdir_of(&prefix);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");

    let lab = {
        let _l = LAB_LOCK.lock().unwrap();
        std::panic::catch_unwind(|| {
            DrLab::build_with_prefix(
                &prefix,
                LabOpts {
                    reals: 3,
                    ..LabOpts::default()
                },
            )
        })
    };
    let Ok(lab) = lab else {
        teardown(&prefix, &[]);
        return ExitCode::FAILURE;
    };
    let mut report = Report {
        short: work.display().to_string(),
        steps: Vec::new(),
        ok: true,
    };
    let rotation = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "lvs-lab-demo".into());
    let mut kept: Option<String> = None;
    std::thread::scope(|s| {
        let r = &mut report;
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut d = match setup(r, &lab, &work, &rotation) {
                Ok(d) => d,
                Err(e) => {
                    r.check(false, &format!("setup: {e:#}"));
                    return None;
                }
            };
            r.end_step();
            if r.failed() {
                return Some(d);
            }
            let hap = &d.hap;
            let (labr, rot, stopr) = (&lab, &rotation, &stop);
            let n = d.nodes.len();
            // The controller thread outlives `d`'s borrow scope: give it its own handle
            // on the same HAProxy (its stats socket).
            let hap2 = Haproxy {
                pid: hap.pid,
                socket: hap.socket.clone(),
            };
            s.spawn(move || controller(labr, &hap2, n, rot, stopr));
            let _ = d.wait_rotation(|_| true, Duration::from_secs(2));
            step_arp(r, &d);
            step_spread(r, &mut d);
            step_kill(r, &mut d);
            step_drain(r, &mut d);
            Some(d)
        }));
        stop.store(true, Ordering::SeqCst);
        match res {
            Ok(Some(d)) => {
                if keep {
                    kept = Some(explore_help(&d, &prefix, &exe));
                }
            }
            Ok(None) => {}
            Err(_) => {
                r.check(false, "the demo hit an unexpected error (see above)");
            }
        }
    });

    println!("\n━━━ Summary ━━━");
    for (i, (t, ok)) in report.steps.iter().enumerate() {
        println!("  {} {}. {t}", if *ok { "✔" } else { "✘" }, i + 1);
    }
    let failed = report.failed() || report.steps.is_empty();
    println!(
        "  {} in {:.1} s",
        if failed {
            "✘ FAILED"
        } else {
            "✔ all steps passed"
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(help) = kept {
        print!("{help}");
        std::mem::forget(lab);
    } else {
        let _l = LAB_LOCK.lock().unwrap();
        drop(lab);
        teardown(&prefix, &[]);
        println!("  lab {prefix} torn down (namespaces deleted, processes stopped)");
    }
    let _ = std::io::stdout().flush();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
