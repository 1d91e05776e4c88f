//! End-to-end failure detection on the real director (docs/benchmarks.md, "Real director"):
//! the time from GridFTP killed (SIGKILL) or hung (SIGSTOP) on a node to that node leaving
//! the IPVS table or getting weight 0 in the qemu guest's keepalived, for the seeds'
//! TCP_CHECK settings (the baseline) against HTTP_GET on the agent's /health and MISC_CHECK
//! through `lvs-node probe`; and to HAProxy (in a namespace) marking it down via agent-check.
//!
//! In the guest, `lvs-lab-ipvs-watch` reads /proc/net/ip_vs every 10 ms and copies it to the
//! 9p share when it changes; the host reads that copy every 10 ms, so a figure is the
//! detection time plus at most ~20 ms of polling.
//! Run by tests/bench/director.sh (as root); `RUNS=N` repetitions per scenario.

use lab::bench;
use lab::dr::IpvsLab;
use lab::haproxy::{Haproxy, Server};
use lab::{bins, gridftp, wait_for};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const AGENT_PORT: u16 = 8081;

/// A checker under test: its real_server body (inside `real_server RIP 2811 { ... }`) and
/// the virtual_server's delay_loop.
struct Scenario {
    name: &'static str,
    delay_loop: u32,
    checker: String,
}

fn scenarios(rip: &str, lvs_node: &Path) -> Vec<Scenario> {
    vec![
        Scenario {
            name: bench::TCP_CHECK_INFN_NAME,
            delay_loop: 6,
            checker: bench::TCP_CHECK_INFN.into(),
        },
        Scenario {
            name: "TCP_CHECK, OSG/Nebraska seed (delay_loop 10, connect_timeout 3)",
            delay_loop: 10,
            checker: "TCP_CHECK {\n    connect_timeout 3\n    connect_port 2811\n}\n".into(),
        },
        Scenario {
            name: "HTTP_GET /health (delay_loop 1, connect_timeout 1, retry 0)",
            delay_loop: 1,
            checker: bench::http_get(rip),
        },
        Scenario {
            name: "MISC_CHECK misc_dynamic via `lvs-node probe` (delay_loop 1)",
            delay_loop: 1,
            checker: bench::misc_check(rip, lvs_node),
        },
    ]
}

fn node_toml(ip: &str, dir: &Path) -> String {
    bench::node_toml(
        ip,
        dir,
        "500ms",
        "300ms",
        &format!("agent_check = \"{ip}:{AGENT_PORT}\"\n"),
        "",
    )
}

struct Bench {
    lab: IpvsLab,
    work: PathBuf,
    gridftp: u32,
    rip: String,
}

impl Bench {
    fn restart_gridftp(&mut self) {
        let rs = &self.lab.reals[0];
        rs.ns.kill(self.gridftp);
        self.gridftp = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &self.work.join("gridftp.log"));
    }

    /// In rotation: present in the watched copy with a weight above 0.
    fn in_rotation(&self) -> bool {
        bench::in_rotation(&self.lab.director, &self.rip)
    }

    /// Kills or stops GridFTP, returns the seconds until the node left rotation (None: not
    /// within `bound`), then restores GridFTP and waits until the node is back.
    fn one_run(
        &mut self,
        sig: Signal,
        bound: Duration,
        back: &dyn Fn(&Bench) -> bool,
    ) -> Option<f64> {
        let ok = wait_for(Duration::from_secs(60), || back(self).then_some(()));
        assert!(
            ok.is_some(),
            "the node did not come into rotation before the run"
        );
        // Let a whole check cycle pass, so the kill lands at a random phase of delay_loop.
        bench::random_pause(Duration::from_millis(300));
        let rs = &self.lab.reals[0];
        let t0 = Instant::now();
        rs.ns.signal(self.gridftp, sig);
        let out = bench::seconds_until(t0, bound, || !back(self));
        let rs = &self.lab.reals[0];
        if sig == Signal::SIGSTOP {
            rs.ns.signal(self.gridftp, Signal::SIGCONT);
        }
        self.restart_gridftp();
        out
    }
}

fn main() {
    let runs: usize = bench::env_or("RUNS", 3);
    let hung_bound: u64 = bench::env_or("HUNG_BOUND", 30);
    let lab = bench::boot("dbench");
    let work = std::env::temp_dir().join(format!("{}-bench", lab.prefix));
    std::fs::create_dir_all(&work).unwrap();
    let rs = &lab.reals[0];
    let rip = rs.ip.to_string();
    let gftp = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &work.join("gridftp.log"));
    let cfg = work.join("node.toml");
    std::fs::write(&cfg, node_toml(&rip, &work)).unwrap();
    rs.ns.spawn_logged(
        &format!("{} -c {} run", bins::lvs_node().display(), cfg.display()),
        &work.join("agent.log"),
    );
    lab.director.start_table_watch(10).unwrap();
    let mut b = Bench {
        lab,
        work: work.clone(),
        gridftp: gftp,
        rip: rip.clone(),
    };
    let lvs_node = bins::lvs_node();
    let mut rows = Vec::new();
    for sc in scenarios(&rip, &lvs_node) {
        let conf = bench::checker_conf(&rip, sc.delay_loop, &sc.checker, &lvs_node);
        b.lab.director.stop_keepalived().unwrap();
        b.lab
            .director
            .load_keepalived(&conf)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let back = |b: &Bench| b.in_rotation();
        let kill_bound = Duration::from_secs(sc.delay_loop as u64 * 3 + 10);
        let mut killed = Vec::new();
        for _ in 0..runs {
            match b.one_run(Signal::SIGKILL, kill_bound, &back) {
                Some(t) => killed.push(t),
                None => println!(
                    "  {}: killed GridFTP not detected within {} s",
                    sc.name,
                    kill_bound.as_secs()
                ),
            }
        }
        let hung = b.one_run(Signal::SIGSTOP, Duration::from_secs(hung_bound), &back);
        let line = format!(
            "| {} | killed: {} | hung: {} |",
            sc.name,
            bench::stats(&killed, runs, "s"),
            hung.map(|t| format!("{t:.2} s"))
                .unwrap_or(format!("not detected in {hung_bound} s"))
        );
        println!("{line}");
        rows.push(line);
    }
    // HAProxy agent-check, in the client namespace, against the same node.
    b.lab.director.stop_keepalived().unwrap();
    let hdir = work.join("haproxy");
    let ha = Haproxy::start(
        &b.lab.client.ns,
        &hdir,
        &[Server {
            name: "rs0".into(),
            addr: format!("{rip}:2811"),
            agent_addr: rip.clone(),
            agent_port: AGENT_PORT,
        }],
    );
    let up = |b: &Bench| {
        ha.server(&b.lab.client.ns, "rs0")
            .is_some_and(|(st, w)| st.starts_with("UP") && w > 0)
    };
    let mut killed = Vec::new();
    for _ in 0..runs {
        match b.one_run(Signal::SIGKILL, Duration::from_secs(20), &up) {
            Some(t) => killed.push(t),
            None => println!("  HAProxy agent-check: killed GridFTP not detected within 20 s"),
        }
    }
    let hung = b.one_run(Signal::SIGSTOP, Duration::from_secs(hung_bound), &up);
    let line = format!(
        "| HAProxy 2.6 agent-check (agent-inter 300ms, check inter 500ms) | killed: {} | hung: {} |",
        bench::stats(&killed, runs, "s"),
        hung.map(|t| format!("{t:.2} s")).unwrap_or(format!("not detected in {hung_bound} s"))
    );
    println!("{line}");
    rows.push(line);
    bench::print_summary(&rows);
    let _ = std::fs::remove_dir_all(&work);
}
