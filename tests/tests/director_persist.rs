//! Drain with persistence on the REAL director (a qemu guest with IPVS and keepalived): the
//! config `lvs-node director-config --gridftp-data-ports` prints (one `virtual_server
//! fwmark` with `persistence_timeout 300`, its mark rules run as printed), loaded unchanged,
//! two nodes running `lvs-node run` and GridFTP, and a client that opens a new GridFTP
//! control session to the VIP every second and holds each one 3 s, as an FTS host with a
//! few source addresses does.
//!
//! IPVS sends every connection of a client that holds a persistence template to the
//! template's node, whatever that node's weight: a drained node (weight 0) keeps getting
//! the client for as long as it reconnects, and `drain --wait` never sees zero sessions.
//! `net.ipv4.vs.expire_quiescent_template = 1` (in the file `director-config --sysctl`
//! prints) makes IPVS drop a template whose node has weight 0 at its next use. Both cases
//! run here: with the printed sysctl file loaded, the client leaves the drained node within
//! the time docs/director.md states and `drain --wait` finishes; without it, the client
//! stays on the drained node and `drain --wait` times out.
//!
//! The client runs on a thread of this test inside the client namespace (setns), so every
//! session's node (from the GridFTP banner) and start time are measured here directly.

mod daemon_util;

use daemon_util::*;
use lab::dr::{IpvsLab, CLIENT_IP, DIRECTOR_IP, VIP};
use lab::vm::director::tail;
use lab::{bins, gridftp, wait_for};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The client opens a session this often ...
const EVERY: Duration = Duration::from_secs(1);
/// ... and holds each one this long (several are open at any time, as under FTS).
const HOLD: Duration = Duration::from_secs(3);
/// docs/director.md, "Draining a node under persistence": with the sysctl, the last new
/// session that reaches a drained node starts at most `delay_loop` + `connect_timeout`
/// (1 s + 1 s as printed) after `drain`.
const LEFT_WITHIN: Duration = Duration::from_secs(2);

/// One GridFTP control session of the client.
#[derive(Clone, Debug)]
struct Session {
    /// When the client began to connect.
    start: Instant,
    /// The node that answered (`rs0` / `rs1`, from the banner's host name), or why none did.
    node: Result<String, String>,
}

/// The reconnecting client: a thread in the client namespace that starts one session
/// thread every [`EVERY`]. Stopped and joined on drop.
struct Client {
    stop: Arc<AtomicBool>,
    sessions: Arc<Mutex<Vec<Session>>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    fn start(netns: &str) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let (s2, l2) = (stop.clone(), sessions.clone());
        let path = PathBuf::from("/run/netns").join(netns);
        let thread = std::thread::spawn(move || {
            // This thread, and every thread it starts, lives in the client's namespace.
            let ns = std::fs::File::open(&path).expect("open the client's netns");
            // SAFETY: setns(2) on a file descriptor this thread owns for the call's
            // duration; it changes only the calling thread's network namespace and touches
            // no memory of this process.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns into the client's namespace: {}",
                std::io::Error::last_os_error()
            );
            let mut open: Vec<JoinHandle<()>> = Vec::new();
            while !s2.load(Ordering::SeqCst) {
                let l3 = l2.clone();
                open.push(std::thread::spawn(move || {
                    let start = Instant::now();
                    let node = session();
                    l3.lock().unwrap().push(Session { start, node });
                }));
                std::thread::sleep(EVERY);
            }
            for t in open {
                let _ = t.join();
            }
        });
        Client {
            stop,
            sessions,
            thread: Some(thread),
        }
    }

    fn sessions(&self) -> Vec<Session> {
        let mut v = self.sessions.lock().unwrap().clone();
        v.sort_by_key(|s| s.start);
        v
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One control session to VIP:2811: the banner (`220 rs0.lab GridFTP Server ...`), held
/// for [`HOLD`], then QUIT. Returns the node's name.
fn session() -> Result<String, String> {
    let addr = SocketAddr::from((VIP, 2811));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut banner = String::new();
    r.read_line(&mut banner)
        .map_err(|e| format!("banner: {e}"))?;
    let node = banner
        .split_whitespace()
        .nth(1)
        .and_then(|h| h.strip_suffix(".lab"))
        .filter(|n| banner.starts_with("220 ") && n.starts_with("rs"))
        .ok_or_else(|| format!("not a GridFTP banner: {banner:?}"))?
        .to_string();
    std::thread::sleep(HOLD);
    let mut w = s;
    let _ = w.write_all(b"QUIT\r\n");
    let mut bye = String::new();
    let _ = r.read_line(&mut bye);
    Ok(node)
}

/// What one drain under a persistent client gave.
struct Run {
    /// The node the client was on, and was drained.
    drained: String,
    t_drain: Instant,
    /// When the guest's IPVS table first showed the drained node at weight 0.
    t_weight0: Option<Instant>,
    sessions: Vec<Session>,
    /// `drain --wait`'s exit code and output.
    drain_rc: Option<i32>,
    drain_log: String,
    /// For failure messages: the director's tables at the end.
    director: String,
}

impl Run {
    fn describe(&self) -> String {
        let at = |t: Instant| {
            t.saturating_duration_since(self.t_drain).as_secs_f64()
                - self.t_drain.saturating_duration_since(t).as_secs_f64()
        };
        let mut o = format!(
            "drained {} at 0.00 s; IPVS weight 0 at {}; drain --wait exit {:?}:\n{}\nsessions (start from drain, node):\n",
            self.drained,
            self.t_weight0
                .map(|t| format!("{:.2} s", at(t)))
                .unwrap_or_else(|| "never".into()),
            self.drain_rc,
            self.drain_log.trim_end()
        );
        for s in &self.sessions {
            o.push_str(&format!("  {:+.2} s  {:?}\n", at(s.start), s.node));
        }
        o.push_str(&self.director);
        o
    }

    /// Sessions that started at least `after` past the drain.
    fn after(&self, after: Duration) -> Vec<&Session> {
        self.sessions
            .iter()
            .filter(|s| s.start >= self.t_drain + after)
            .collect()
    }
}

/// Builds the pool on the real director with the printed `--gridftp-data-ports` config
/// (and, if `sysctl`, the printed `--sysctl` file in the guest's kernel), starts the client,
/// drains the node it is on with `drain --wait --timeout wait`, and keeps the client going
/// until `drain` has returned and for 4 s more.
fn drain_under_persistence(tag: &str, sysctl: bool, wait: Duration) -> Run {
    let lab = IpvsLab::build(tag, 2)
        .unwrap_or_else(|e| panic!("the real director guest did not come up: {e:#}"));
    let dir = TestDir::new(&lab.prefix);
    let mut cfgs = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        let sub = dir.join(&format!("rs{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        gridftp::start(
            &rs.ns,
            rs.ip,
            &format!("rs{i}.lab"),
            &sub.join("gridftp.log"),
        );
        let allow = format!(
            "allow = [\"{DIRECTOR_IP}\", \"{CLIENT_IP}\", \"{}\"]",
            rs.ip
        );
        // A GridFTP check that tolerates a loaded machine: the director, not the agent's
        // timing, is under test.
        let text = node_toml(
            rs,
            &sub,
            &NodeOpts {
                manage_dataplane: true,
                report_extra: &allow,
                ..NodeOpts::default()
            },
        )
        .replace(
            "interval = \"500ms\"\ntimeout = \"300ms\"",
            "interval = \"1s\"\ntimeout = \"900ms\"",
        )
        .replace("rise = 2\nfall = 1", "rise = 2\nfall = 2");
        assert!(text.contains("timeout = \"900ms\"") && text.contains("fall = 2"));
        let cfg = sub.join("node.toml");
        std::fs::write(&cfg, text).unwrap();
        start_agent(rs, &cfg, &sub.join("agent.log"), HTTP_PORT);
        let on_lo = wait_for(Duration::from_secs(10), || {
            rs.ns
                .ok("ip -o addr show dev lo")
                .contains(&format!("{VIP}/32"))
                .then_some(())
        });
        assert!(
            on_lo.is_some(),
            "lvs-node run did not put {VIP} on lo of rs{i}"
        );
        cfgs.push(cfg);
    }
    let d = &lab.director;

    // The director's config exactly as printed, read from the nodes by an admin's host.
    let lvs_node = bins::lvs_node();
    let mut cmd = format!(
        "{} director-config --gridftp-data-ports 50000-50100",
        lvs_node.display()
    );
    for rs in &lab.reals {
        cmd.push_str(&format!(" --pool http://{}:{HTTP_PORT}", rs.ip));
    }
    let conf = lab.client.ok(&cmd);
    assert!(
        conf.contains("virtual_server fwmark 2811 {") && conf.contains("persistence_timeout 300"),
        "{conf}"
    );
    let rules: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("#   nft "))
        .collect();
    assert_eq!(rules.len(), 3, "the nft mark rules as printed:\n{conf}");
    for r in &rules {
        d.vm.ok(&format!("nft {r}"));
    }

    // The sysctl file exactly as printed, or the kernel's default.
    let key = "net.ipv4.vs.expire_quiescent_template";
    if sysctl {
        let file = lab
            .client
            .ok(&format!("{} director-config --sysctl", lvs_node.display()));
        assert!(file.contains(&format!("\n{key} = 1\n")), "{file}");
        std::fs::write(d.vm.io_dir().join("90-lvs-director.conf"), &file).unwrap();
        d.vm.ok("sysctl -p /lab/90-lvs-director.conf");
    }
    assert_eq!(
        d.vm.ok(&format!("sysctl -n {key}")).trim(),
        if sysctl { "1" } else { "0" },
        "{key} in the guest"
    );

    d.load_keepalived(&conf)
        .unwrap_or_else(|e| panic!("keepalived did not load the printed config: {e:#}\n{conf}"));
    assert!(
        d.loaded_keepalived_conf() == conf,
        "the guest's keepalived.conf is not the printed config"
    );
    d.start_table_watch(10).unwrap();
    let weight_of = |i: usize| -> Option<u32> {
        let ip = format!("{}:", lab.reals[i].ip);
        d.watched_table()
            .into_iter()
            .find(|s| s.key == "FWM 2811")?
            .reals
            .into_iter()
            .find(|r| r.addr.starts_with(&ip))
            .map(|r| r.weight)
    };
    let both = wait_for(Duration::from_secs(60), || {
        (0..2)
            .all(|i| weight_of(i).is_some_and(|w| w > 0))
            .then_some(())
    });
    assert!(
        both.is_some(),
        "both nodes should be in FWM 2811 with a weight:\n{}\nkeepalived log:\n{}",
        d.ipvsadm_ln(),
        tail(&d.keepalived_log(), 20)
    );

    // The client, until its first 3 sessions are in: all on one node (persistence).
    let mut client = Client::start(&lab.client.ns.name);
    let first = wait_for(Duration::from_secs(30), || {
        let s = client.sessions();
        (s.len() >= 3).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "the client got fewer than 3 sessions in 30 s: {:?}",
            client.sessions()
        )
    });
    let drained = first[0]
        .node
        .clone()
        .unwrap_or_else(|e| panic!("the client's first session failed: {e}"));
    assert!(
        first.iter().all(|s| s.node.as_ref() == Ok(&drained)),
        "persistence: every session of the client should reach the same node: {first:?}\n{}",
        d.vm.ok("ipvsadm -Lnc")
    );
    let i: usize = drained[2..].parse().unwrap();

    // Drain that node and wait for its sessions, as an admin does.
    let log = dir.join("drain.log");
    let t_drain = Instant::now();
    let pid = lab.reals[i].ns.spawn_logged(
        &format!(
            "{} -c {} drain --reason lab --wait --timeout {}s",
            lvs_node.display(),
            cfgs[i].display(),
            wait.as_secs()
        ),
        &log,
    );
    let t_weight0 = wait_for(Duration::from_secs(20), || {
        (weight_of(i) == Some(0)).then(Instant::now)
    });
    let drain_rc = lab.reals[i].ns.wait(pid, wait + Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(4));
    client.stop();
    let director = format!(
        "ipvsadm -Ln:\n{}\nipvsadm -Lnc:\n{}\nkeepalived log tail:\n{}",
        d.ipvsadm_ln(),
        d.vm.ok("ipvsadm -Lnc"),
        tail(&d.keepalived_log(), 10)
    );
    Run {
        drained,
        t_drain,
        t_weight0,
        sessions: client.sessions(),
        drain_rc,
        drain_log: std::fs::read_to_string(&log).unwrap_or_default(),
        director,
    }
}

/// With `expire_quiescent_template = 1` (the printed `--sysctl` file): the client's new
/// sessions leave the drained node within [`LEFT_WITHIN`] of `drain`, all later ones reach
/// the other node, none fails, and `drain --wait` returns 0 once the held sessions end.
#[test]
fn with_expire_quiescent_template_a_drain_under_persistence_finishes() {
    let r = drain_under_persistence("persist1", true, Duration::from_secs(30));
    let why = r.describe();
    println!("{why}");
    assert!(
        r.t_weight0.is_some(),
        "the drained node never got weight 0:\n{why}"
    );
    assert!(
        r.sessions.iter().all(|s| s.node.is_ok()),
        "a session of the client failed:\n{why}"
    );
    let last_on_drained = r
        .sessions
        .iter()
        .filter(|s| s.node.as_ref() == Ok(&r.drained))
        .map(|s| s.start)
        .max()
        .unwrap();
    assert!(
        last_on_drained <= r.t_drain + LEFT_WITHIN,
        "the drained node still got a new session of the persistent client {:.2} s after \
         drain (docs/director.md: at most {} s):\n{why}",
        (last_on_drained - r.t_drain).as_secs_f64(),
        LEFT_WITHIN.as_secs()
    );
    let later = r.after(LEFT_WITHIN);
    assert!(
        later.len() >= 3,
        "the client should have kept reconnecting after the drain:\n{why}"
    );
    assert_eq!(r.drain_rc, Some(0), "drain --wait did not finish:\n{why}");
    assert!(
        r.drain_log
            .contains("drained: no established sessions left"),
        "{why}"
    );
}

/// Without it (the kernel's default 0): the director sets the drained node's weight to 0,
/// yet every new session of the persistent client still reaches that node, and
/// `drain --wait --timeout 12s` gives up with sessions open. This is the failure the sysctl
/// prevents; the test shows the lab reproduces it.
#[test]
fn without_expire_quiescent_template_the_drained_node_keeps_the_persistent_client() {
    let r = drain_under_persistence("persist0", false, Duration::from_secs(12));
    let why = r.describe();
    println!("{why}");
    let w0 = r
        .t_weight0
        .unwrap_or_else(|| panic!("the drained node never got weight 0:\n{why}"));
    let later: Vec<&Session> = r
        .sessions
        .iter()
        .filter(|s| s.start >= w0 + Duration::from_secs(1))
        .collect();
    assert!(later.len() >= 5, "too few sessions after weight 0:\n{why}");
    assert!(
        later.iter().all(|s| s.node.as_ref() == Ok(&r.drained)),
        "without expire_quiescent_template the persistent client should stay on the drained \
         node (weight 0):\n{why}"
    );
    assert_eq!(
        r.drain_rc,
        Some(1),
        "drain --wait should time out with the client's sessions open:\n{why}"
    );
    assert!(r.drain_log.contains("still open"), "{why}");
}
