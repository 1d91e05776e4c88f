//! BFD on the real director (docs/benchmarks.md, "BFD"): the time from GridFTP killed
//! (SIGKILL) on a node to the node leaving rotation (out of the IPVS table or weight 0) in
//! the qemu guest's keepalived, for the config `lvs-node director-config --pool --bfd`
//! prints (BFD_CHECK beside HTTP_GET) against HTTP_GET alone (delay_loop 1), MISC_CHECK
//! through `lvs-node probe` and the seeds' TCP_CHECK (the baseline), all in one run against
//! the same node; the agent itself SIGKILLed, for the BFD config and HTTP_GET alone; then
//! the idle cost of a 50 ms session: BFD packets per second (nftables
//! counters in the node's namespace) and the agent's CPU with and without `[bfd]`.
//!
//! The agent checks GridFTP every 100 ms. In the guest, `lvs-lab-ipvs-watch` reads
//! /proc/net/ip_vs every 10 ms and copies it to the 9p share when it changes; the host reads
//! that copy every 10 ms, so a figure is the detection time plus at most ~20 ms of polling. Run by
//! tests/bench/bfd.sh (as root); `RUNS=N` kills per checker, `IDLE_SECS=N` the idle
//! measurement.

use lab::bench::{self, HTTP_PORT};
use lab::dr::{IpvsLab, CLIENT_IP, DIRECTOR_IP};
use lab::{bins, gridftp, wait_for};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn node_toml(ip: &str, dir: &std::path::Path, bfd: bool) -> String {
    let bfd = if bfd {
        format!("[bfd]\ndirectors = [\"{DIRECTOR_IP}\"]\nmin_tx = \"50ms\"\nmin_rx = \"50ms\"\nmultiplier = 3\n")
    } else {
        String::new()
    };
    bench::node_toml(
        ip,
        dir,
        "100ms",
        "90ms",
        &format!("allow = [\"{DIRECTOR_IP}\", \"{CLIENT_IP}\", \"{ip}\"]\n"),
        &bfd,
    )
}

struct Bench {
    lab: IpvsLab,
    work: PathBuf,
    gridftp: u32,
    agent: u32,
    rip: String,
}

impl Bench {
    fn in_rotation(&self) -> bool {
        bench::in_rotation(&self.lab.director, &self.rip)
    }

    fn start_agent(&mut self, bfd: bool) {
        let rs = &self.lab.reals[0];
        if self.agent != 0 {
            rs.ns.signal(self.agent, nix::sys::signal::Signal::SIGTERM);
            rs.ns.wait(self.agent, Duration::from_secs(10));
        }
        let cfg = self.work.join("node.toml");
        std::fs::write(&cfg, node_toml(&self.rip, &self.work, bfd)).unwrap();
        self.agent = rs.ns.spawn_logged(
            &format!("{} -c {} run", bins::lvs_node().display(), cfg.display()),
            &self.work.join("agent.log"),
        );
        let ok = wait_for(Duration::from_secs(15), || {
            rs.ns
                .run(&format!(
                    "curl -sf -o /dev/null -m 1 http://{}:{HTTP_PORT}/health",
                    self.rip
                ))
                .status
                .success()
                .then_some(())
        });
        assert!(ok.is_some(), "the agent did not come up");
    }

    /// Waits until the node is in rotation, then a random pause, so that a kill lands at a
    /// random phase of the checkers.
    fn before_a_kill(&self) {
        let ok = wait_for(Duration::from_secs(60), || self.in_rotation().then_some(()));
        assert!(
            ok.is_some(),
            "the node did not come into rotation before the run"
        );
        bench::random_pause(Duration::from_millis(1500));
    }

    /// Kills GridFTP, returns the seconds until the node left rotation (None: not within
    /// `bound`), then restarts GridFTP.
    fn one_run(&mut self, bound: Duration) -> Option<f64> {
        self.before_a_kill();
        let rs = &self.lab.reals[0];
        let t0 = Instant::now();
        rs.ns.kill(self.gridftp);
        let out = bench::seconds_until(t0, bound, || !self.in_rotation());
        let rs = &self.lab.reals[0];
        self.gridftp = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &self.work.join("gridftp.log"));
        out
    }

    /// SIGKILLs the agent (it sends nothing more: no AdminDown), returns the seconds until
    /// the node left rotation (None: not within `bound`), then starts a new agent.
    fn one_agent_kill(&mut self, bound: Duration) -> Option<f64> {
        self.before_a_kill();
        let t0 = Instant::now();
        self.lab.reals[0].ns.kill(self.agent);
        self.agent = 0;
        let out = bench::seconds_until(t0, bound, || !self.in_rotation());
        self.start_agent(true);
        out
    }

    /// Loads `conf` into a fresh keepalived and times `kill` `runs` times (bound: `bound_s`
    /// seconds each); a run that was not detected is reported and left out.
    fn measure(
        &mut self,
        conf: &str,
        runs: usize,
        bound_s: u64,
        what: &str,
        kill: fn(&mut Bench, Duration) -> Option<f64>,
    ) -> Vec<f64> {
        self.lab.director.stop_keepalived().unwrap();
        self.lab
            .director
            .load_keepalived(conf)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let mut times = Vec::new();
        for _ in 0..runs {
            match kill(self, Duration::from_secs(bound_s)) {
                Some(t) => times.push(t),
                None => println!("  {what}: not detected within {bound_s} s"),
            }
        }
        times
    }

    /// The agent's CPU time in seconds (utime + stime from /proc/PID/stat).
    fn agent_cpu(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.agent)).unwrap();
        let rest = &s[s.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        ticks
            / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()
                .unwrap_or(100) as f64
    }

    /// BFD packets counted by the node's nftables table (out, in).
    fn bfd_packets(&self) -> (u64, u64) {
        let t = self.lab.reals[0].ns.ok("nft list table inet bfdbench");
        let mut n = t.lines().filter_map(|l| {
            let i = l.find("packets ")?;
            l[i + 8..].split_whitespace().next()?.parse::<u64>().ok()
        });
        (n.next().unwrap_or(0), n.next().unwrap_or(0))
    }

    /// CPU% of the agent and (with BFD) packets/s over `secs` of idle.
    fn idle(&self, secs: u64) -> (f64, f64, f64) {
        let (o0, i0) = self.bfd_packets();
        let c0 = self.agent_cpu();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let el = t0.elapsed().as_secs_f64();
        let (o1, i1) = self.bfd_packets();
        let c1 = self.agent_cpu();
        (
            (c1 - c0) / el * 100.0,
            (o1 - o0) as f64 / el,
            (i1 - i0) as f64 / el,
        )
    }
}

fn main() {
    let runs: usize = bench::env_or("RUNS", 3);
    let idle_secs: u64 = bench::env_or("IDLE_SECS", 30);
    let lab = bench::boot("bfdbench");
    let work = std::env::temp_dir().join(format!("{}-bench", lab.prefix));
    std::fs::create_dir_all(&work).unwrap();
    let rs = &lab.reals[0];
    let rip = rs.ip.to_string();
    rs.ok("nft add table inet bfdbench && \
         nft add chain inet bfdbench out '{ type filter hook output priority 0; }' && \
         nft add chain inet bfdbench in '{ type filter hook input priority 0; }' && \
         nft add rule inet bfdbench out udp dport 3784 counter && \
         nft add rule inet bfdbench in udp dport 3784 counter");
    let gftp = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &work.join("gridftp.log"));
    lab.director.start_table_watch(10).unwrap();
    let mut b = Bench {
        lab,
        work: work.clone(),
        gridftp: gftp,
        agent: 0,
        rip: rip.clone(),
    };
    b.start_agent(true);
    let lvs_node = bins::lvs_node();

    // The BFD config exactly as director-config prints it for this node.
    let out = b.lab.client.ns.run(&format!(
        "{} director-config --pool http://{rip}:{HTTP_PORT} --bfd --bfd-source {DIRECTOR_IP}",
        lvs_node.display()
    ));
    assert!(
        out.status.success(),
        "director-config --bfd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bfd_conf = String::from_utf8(out.stdout).unwrap();
    let scenarios: Vec<(&str, u64, String)> = vec![
        (
            "BFD_CHECK + HTTP_GET as `director-config --pool --bfd` prints (BFD 50 ms x 3)",
            10,
            bfd_conf,
        ),
        (
            "HTTP_GET /health (delay_loop 1, connect_timeout 1, retry 0)",
            10,
            bench::checker_conf(&rip, 1, &bench::http_get(&rip), &lvs_node),
        ),
        (
            "MISC_CHECK misc_dynamic via `lvs-node probe` (delay_loop 1)",
            10,
            bench::checker_conf(&rip, 1, &bench::misc_check(&rip, &lvs_node), &lvs_node),
        ),
        (
            bench::TCP_CHECK_INFN_NAME,
            30,
            bench::checker_conf(&rip, 6, bench::TCP_CHECK_INFN, &lvs_node),
        ),
    ];
    let mut rows = Vec::new();
    let mut means = Vec::new();
    for (name, bound, conf) in &scenarios {
        let killed = b.measure(
            conf,
            runs,
            *bound,
            &format!("{name}: killed GridFTP"),
            Bench::one_run,
        );
        let line = format!("| {name} | {} |", bench::stats(&killed, runs, "ms"));
        println!("{line}");
        rows.push(line);
        // A ratio only from complete runs: a left-out run is a slow one.
        means.push(bench::mean(&killed).filter(|_| killed.len() == runs));
    }
    if let (Some(Some(bfd)), Some(Some(tcp))) = (means.first(), means.last()) {
        let line = format!(
            "BFD vs the seeds' TCP_CHECK (means): {:.0}x faster",
            tcp / bfd
        );
        println!("{line}");
        rows.push(line);
    } else {
        let line =
            "BFD vs the seeds' TCP_CHECK: no ratio, runs were left out (see above)".to_string();
        println!("{line}");
        rows.push(line);
    }

    // The agent itself SIGKILLed: nothing announces it, so BFD_CHECK waits out the
    // detection time (3 x 50 ms) and HTTP_GET its next failed connection.
    for (name, bound, conf) in &scenarios[..2] {
        let what = format!("{name}: killed agent");
        let killed = b.measure(conf, runs, *bound, &what, Bench::one_agent_kill);
        let line = format!(
            "| agent SIGKILLed: {name} | {} |",
            bench::stats(&killed, runs, "ms")
        );
        println!("{line}");
        rows.push(line);
    }

    // Idle cost: BFD session Up at 50 ms against the director's keepalived (from the BFD
    // config), then the same agent without [bfd].
    b.lab.director.stop_keepalived().unwrap();
    b.lab
        .director
        .load_keepalived(&scenarios[0].2)
        .unwrap_or_else(|e| panic!("{e:#}"));
    wait_for(Duration::from_secs(60), || b.in_rotation().then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    let (cpu_bfd, out_pps, in_pps) = b.idle(idle_secs);
    b.lab.director.stop_keepalived().unwrap();
    b.start_agent(false);
    std::thread::sleep(Duration::from_secs(3));
    let (cpu_plain, _, _) = b.idle(idle_secs);
    let line = format!(
        "| idle, BFD 50 ms x 3 Up | agent CPU {cpu_bfd:.2}% (without [bfd]: {cpu_plain:.2}%) | BFD packets/s sent {out_pps:.1}, received {in_pps:.1} ({idle_secs} s) |"
    );
    println!("{line}");
    rows.push(line);
    bench::print_summary(&rows);
    let _ = std::fs::remove_dir_all(&work);
}
