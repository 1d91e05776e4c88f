//! End-to-end failure detection on the real director (docs/benchmarks.md, "Real director"):
//! the time from GridFTP killed (SIGKILL) or hung (SIGSTOP) on a node to that node leaving
//! the IPVS table or getting weight 0 in the qemu guest's keepalived, for the seeds'
//! TCP_CHECK settings (the baseline) against the config `lvs-node director-config --pool
//! URL` prints (HTTP_GET on the agent's /health), loaded into the guest unchanged and checked
//! there byte for byte, and MISC_CHECK through `lvs-node probe`; and to HAProxy (in a
//! namespace) marking it down via agent-check. One more row runs the printed config with
//! the retry schedule it printed before (`retry 1`, `delay_before_retry 1`), edited in, to
//! show what that schedule costs.
//!
//! In the guest, `lvs-lab-ipvs-watch` reads /proc/net/ip_vs every 10 ms and copies it to the
//! 9p share when it changes; the host reads that copy every 10 ms, so a figure is the
//! detection time plus at most ~20 ms of polling.
//! Run by tests/bench/director.sh (as root); `RUNS=N` repetitions per scenario.

use lab::bench;
use lab::dr::{IpvsLab, CLIENT_IP, DIRECTOR_IP};
use lab::haproxy::{Haproxy, Server};
use lab::{bins, gridftp, wait_for};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const AGENT_PORT: u16 = 8081;

/// The name of the row that carries the promise (median at most 1.5 s).
const PRINTED: &str = "HTTP_GET /health as `director-config --pool URL` prints it, unchanged (delay_loop 1, connect_timeout 1, retry 0)";

/// A checker under test: the whole keepalived config and the virtual_server's delay_loop
/// (which sets the bound on one detection).
struct Scenario {
    name: &'static str,
    delay_loop: u32,
    conf: String,
}

fn scenarios(rip: &str, lvs_node: &Path, printed: &str) -> Vec<Scenario> {
    let conf = |delay_loop, checker: &str| bench::checker_conf(rip, delay_loop, checker, lvs_node);
    vec![
        Scenario {
            name: bench::TCP_CHECK_INFN_NAME,
            delay_loop: 6,
            conf: conf(6, bench::TCP_CHECK_INFN),
        },
        Scenario {
            name: "TCP_CHECK, OSG/Nebraska seed (delay_loop 10, connect_timeout 3)",
            delay_loop: 10,
            conf: conf(
                10,
                "TCP_CHECK {\n    connect_timeout 3\n    connect_port 2811\n}\n",
            ),
        },
        Scenario {
            name: PRINTED,
            delay_loop: 1,
            conf: printed.to_string(),
        },
        Scenario {
            name: "the same, edited to the schedule printed before (retry 1, delay_before_retry 1)",
            delay_loop: 1,
            conf: former_schedule(printed),
        },
        Scenario {
            name: "MISC_CHECK misc_dynamic via `lvs-node probe` (delay_loop 1)",
            delay_loop: 1,
            conf: conf(1, &bench::misc_check(rip, lvs_node)),
        },
    ]
}

/// The printed config with the retry schedule `director-config` printed before `retry 0`.
fn former_schedule(printed: &str) -> String {
    let out = printed.replace(
        "    retry 0\n",
        "    retry 1\n            delay_before_retry 1\n",
    );
    assert!(
        out.contains("retry 1\n") && !out.contains("retry 0"),
        "the printed config has no `retry 0` line to edit:\n{printed}"
    );
    out
}

fn node_toml(ip: &str, dir: &Path) -> String {
    bench::node_toml(
        ip,
        dir,
        "500ms",
        "300ms",
        &format!(
            "agent_check = \"{ip}:{AGENT_PORT}\"\nallow = [\"{DIRECTOR_IP}\", \"{CLIENT_IP}\", \"{ip}\"]\n"
        ),
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
    // The config exactly as an admin on the director's network gets it from the node.
    let out = b.lab.client.ns.run(&format!(
        "{} director-config --pool http://{rip}:{}",
        lvs_node.display(),
        bench::HTTP_PORT
    ));
    assert!(
        out.status.success(),
        "director-config --pool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let mut rows = Vec::new();
    let mut printed_median = None;
    for sc in scenarios(&rip, &lvs_node, &printed) {
        let conf = &sc.conf;
        b.lab.director.stop_keepalived().unwrap();
        b.lab
            .director
            .load_keepalived(conf)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            b.lab.director.loaded_keepalived_conf() == *conf,
            "the guest's keepalived.conf is not the config handed to it:\n{conf}"
        );
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
        if sc.name == PRINTED && killed.len() == runs {
            printed_median = bench::median(&killed);
        }
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
    let line = match printed_median {
        Some(m) => format!(
            "printed config, killed GridFTP: median {m:.2} s against the 1.5 s target: {}",
            if m <= 1.5 { "met" } else { "MISSED" }
        ),
        None => "printed config: no median, runs were not detected within the bound (see above)"
            .to_string(),
    };
    println!("{line}");
    rows.push(line);
    bench::print_summary(&rows);
    let _ = std::fs::remove_dir_all(&work);
}
