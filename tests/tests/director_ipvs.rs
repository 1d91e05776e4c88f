//! `lvs-node` against a REAL LVS director: a qemu guest with the Debian kernel's IPVS and
//! the real keepalived in DR mode (tests/src/vm.rs), on the lab bridge with real servers
//! that run `lvs-node run` managing their own data plane (VIP on lo, ARP suppression) and a
//! real globus-gridftp-server. Every assertion about the director reads `ipvsadm -Ln` (and
//! `--stats`) inside the guest.
//!
//! A guest that cannot boot fails the test with the reason and its console (never a skip).

mod daemon_util;

use daemon_util::*;
use lab::dr::{IpvsLab, VIP};
use lab::vm::director::{keepalived_conf, tail, with_probe_path, IpvsDirector, Real};
use lab::{bins, gridftp, wait_for};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A pool on the real director: the lab, the scratch dir, each node's config and the PID of
/// its GridFTP server.
struct Pool {
    lab: IpvsLab,
    dir: TestDir,
    cfgs: Vec<PathBuf>,
    gridftp: Vec<u32>,
}

fn pool(tag: &str, reals: usize, extra: &str) -> Pool {
    pool_with(tag, reals, extra, "")
}

/// [`pool`] with extra lines inside each node's `[report]`.
fn pool_with(tag: &str, reals: usize, extra: &str, report_extra: &str) -> Pool {
    let lab = IpvsLab::build(tag, reals)
        .unwrap_or_else(|e| panic!("the real director guest did not come up: {e:#}"));
    let dir = TestDir::new(&lab.prefix);
    let mut cfgs = Vec::new();
    let mut pids = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        let sub = dir.join(&format!("rs{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        pids.push(start_gridftp(&lab, i, &sub));
        // daemon_util's node config with a GridFTP check that tolerates a loaded machine
        // (the director's checker, not the agent's timing, is under test here).
        let text = node_toml(
            rs,
            &sub,
            &NodeOpts {
                manage_dataplane: true,
                extra,
                report_extra,
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
        // The agent, not the test, put the VIP on lo and the ARP suppression in place.
        let ok = wait_for(Duration::from_secs(10), || {
            rs.ns
                .ok("ip -o addr show dev lo")
                .contains(&format!("{VIP}/32"))
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "lvs-node run did not put {VIP} on lo of rs{i}"
        );
        cfgs.push(cfg);
    }
    // Only the director answers ARP for the VIP: the nodes' suppression holds.
    assert_eq!(
        lab.arp_answers(&VIP.to_string()),
        vec![lab::dr::DIRECTOR_MAC.to_string()],
        "ARP for the VIP must be answered by the director guest only"
    );
    Pool {
        lab,
        dir,
        cfgs,
        gridftp: pids,
    }
}

fn start_gridftp(lab: &IpvsLab, i: usize, sub: &Path) -> u32 {
    let rs = &lab.reals[i];
    gridftp::start(
        &rs.ns,
        rs.ip,
        &format!("rs{i}.lab"),
        &sub.join("gridftp.log"),
    )
}

/// `lvs-node director-config ARGS` for a node, run on the host as an admin would.
fn director_config(cfg: &Path, args: &[&str]) -> String {
    let out = Command::new(bins::lvs_node())
        .arg("-c")
        .arg(cfg)
        .arg("director-config")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "director-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Pool {
    fn director(&self) -> &IpvsDirector {
        &self.lab.director
    }

    fn rs_addr(&self, i: usize) -> String {
        format!("{}:2811", self.lab.reals[i].ip)
    }

    /// Loads one virtual_server with every node's `director-config ARGS` stanza as printed.
    fn load(&self, args: &[&str], algo: &str) -> String {
        let body: String = self.cfgs.iter().map(|c| director_config(c, args)).collect();
        let conf = with_probe_path(
            &keepalived_conf(VIP, 2811, algo, 1, &body),
            &bins::lvs_node(),
        );
        // The host's keepalived parses the same text (its parser runs without IPVS).
        let f = self.dir.join("keepalived.conf");
        std::fs::write(&f, &conf).unwrap();
        let t = Command::new("keepalived")
            .arg("-t")
            .arg("-f")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            t.status.success(),
            "keepalived -t rejected:\n{conf}\n{}",
            String::from_utf8_lossy(&t.stderr)
        );
        self.director()
            .load_keepalived(&conf)
            .unwrap_or_else(|e| panic!("{e:#}"));
        conf
    }

    fn wait_real(
        &self,
        i: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(Option<&Real>) -> bool,
    ) -> Option<Real> {
        self.director()
            .wait_real(&self.rs_addr(i), timeout, pred)
            .unwrap_or_else(|e| {
                panic!(
                    "rs{i}: want {what}; {e}\nagent log:\n{}",
                    tail(
                        &std::fs::read_to_string(self.dir.join(&format!("rs{i}/agent.log")))
                            .unwrap_or_default(),
                        10
                    )
                )
            })
    }

    /// Fetches `file` through the VIP and checks it arrived intact.
    fn fetch(&self, file: &Path, sum: &str, name: &str) {
        let out = self.dir.join(name);
        let r = gridftp::url_copy(&self.lab.client.ns, &VIP.to_string(), file, &out);
        assert!(
            r.status.success(),
            "globus-url-copy {name} through the IPVS VIP: {}\n{}\nipvsadm -Ln:\n{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr),
            self.director().ipvsadm_ln()
        );
        assert_eq!(gridftp::sha256(&out), sum, "{name} is not intact");
        let _ = std::fs::remove_file(out);
    }

    /// Waits (up to 15 s) until the nodes' IPVS connection counters add up to `n`.
    fn wait_counted(&self, n: u64) {
        let total = || {
            (0..self.lab.reals.len())
                .map(|i| self.conns(i))
                .sum::<u64>()
        };
        let counted = wait_for(Duration::from_secs(15), || (total() >= n).then_some(()));
        assert!(
            counted.is_some(),
            "IPVS counted {} connections, not {n}:\n{}",
            total(),
            self.director().ipvsadm_stats()
        );
    }

    fn conns(&self, i: usize) -> u64 {
        let addr = self.rs_addr(i);
        self.director()
            .stats()
            .into_iter()
            .find(|s| s.addr == addr)
            .map(|s| s.conns)
            .unwrap_or(0)
    }
}

fn weight(w: u32) -> impl Fn(Option<&Real>) -> bool {
    move |r| r.is_some_and(|r| r.weight == w)
}

/// GridFTP through the IPVS VIP with `lvs-node run` on every node: intact and spread over
/// the nodes; a killed GridFTP takes its node to weight 0 (HTTP_GET with
/// `inhibit_on_failure`, as `director-config` prints it), new transfers avoid it, and a
/// restart brings it back.
#[test]
fn gridftp_through_ipvs_spread_killed_node_inhibited_then_back() {
    let p = pool("ipvsgft", 2, "");
    let conf = p.load(&[], "rr");
    assert!(conf.contains("HTTP_GET") && conf.contains("inhibit_on_failure"));
    for i in 0..2 {
        p.wait_real(i, "weight 100", Duration::from_secs(60), weight(100));
    }
    let (file, sum) = gridftp::make_file(&p.dir.join("data"), "f.bin", 1 << 20);
    for k in 0..4 {
        p.fetch(&file, &sum, &format!("spread{k}.bin"));
    }
    // The kernel's IPVS counters are per-CPU sums that its estimator folds in every couple
    // of seconds (slower under TCG): wait until all 4 connections are counted.
    p.wait_counted(4);
    let stats = p.director().ipvsadm_stats();
    for i in 0..2 {
        assert!(
            p.conns(i) >= 1,
            "rs{i} got no connection through IPVS (rr over 4 transfers):\n{stats}"
        );
    }
    assert!(
        p.conns(0) + p.conns(1) >= 4,
        "IPVS counted fewer connections than transfers:\n{stats}"
    );

    // Kill GridFTP on rs0: the agent's /health turns 503, keepalived's HTTP_GET fails and
    // (inhibit_on_failure) sets weight 0 instead of removing the node.
    p.lab.reals[0].ns.kill(p.gridftp[0]);
    p.wait_real(
        0,
        "weight 0 (inhibited) after GridFTP was killed",
        Duration::from_secs(40),
        weight(0),
    );
    assert_eq!(
        p.director().real(&p.rs_addr(1)).map(|r| r.weight),
        Some(100),
        "rs1 must stay in rotation:\n{}",
        p.director().ipvsadm_ln()
    );
    let before = p.conns(0);
    for k in 0..2 {
        p.fetch(&file, &sum, &format!("avoid{k}.bin"));
    }
    p.wait_counted(6);
    assert_eq!(
        p.conns(0),
        before,
        "a new transfer went to the node whose GridFTP is down:\n{}",
        p.director().ipvsadm_stats()
    );

    // Restart: back at full weight.
    let sub = p.dir.join("rs0");
    start_gridftp(&p.lab, 0, &sub);
    p.wait_real(
        0,
        "weight 100 after GridFTP restarted",
        Duration::from_secs(40),
        weight(100),
    );
    let log = p.director().keepalived_log();
    assert!(
        log.contains("HTTP_CHECK") || log.contains("HTTP status"),
        "keepalived's log shows no HTTP_GET checker activity:\n{}",
        tail(&log, 20)
    );
}

/// `lvs-node drain`: IPVS weight 0 while a running (throttled) transfer stays in ActiveConn
/// and finishes intact; `resume` restores the weight.
#[test]
fn drain_keeps_running_transfer_in_ipvs_and_resume_restores_weight() {
    let p = pool("ipvsdrn", 1, "");
    p.load(&[], "wlc");
    p.wait_real(0, "weight 100", Duration::from_secs(60), weight(100));
    let rs = &p.lab.reals[0];
    // About 34 s for 8 MiB: long enough to drain while it runs, also on a loaded machine.
    rs.ok("tc qdisc add dev eth0 root tbf rate 2mbit burst 32k latency 400ms");
    let (file, sum) = gridftp::make_file(&p.dir.join("data"), "big.bin", 8 << 20);
    let out = p.dir.join("drained.bin");
    let copy = p.lab.client.ns.spawn_logged(
        &format!(
            "timeout 120 {}",
            gridftp::url_copy_cmd(&VIP.to_string(), &file, &out)
        ),
        &p.dir.join("copy.log"),
    );
    p.wait_real(
        0,
        "the transfer's control connection in ActiveConn",
        Duration::from_secs(40),
        |r| r.is_some_and(|r| r.active >= 1),
    );
    let d = lvs(&rs.ns, &p.cfgs[0], "drain --reason lab");
    assert!(
        d.status.success(),
        "drain: {}",
        String::from_utf8_lossy(&d.stderr)
    );
    let r = p.wait_real(
        0,
        "weight 0 after drain",
        Duration::from_secs(40),
        weight(0),
    );
    let r = r.unwrap();
    assert!(
        r.active >= 1,
        "the running transfer left ActiveConn when the node was drained:\n{}",
        p.director().ipvsadm_ln()
    );
    assert_eq!(
        p.lab.client.ns.wait(copy, Duration::from_secs(120)),
        Some(0),
        "the transfer running during drain failed: {}",
        std::fs::read_to_string(p.dir.join("copy.log")).unwrap_or_default()
    );
    assert_eq!(
        gridftp::sha256(&out),
        sum,
        "the drained transfer is not intact"
    );
    let u = lvs(&rs.ns, &p.cfgs[0], "resume");
    assert!(
        u.status.success(),
        "resume: {}",
        String::from_utf8_lossy(&u.stderr)
    );
    p.wait_real(
        0,
        "weight 100 after resume",
        Duration::from_secs(40),
        weight(100),
    );
}

/// MISC_CHECK with `misc_dynamic` through `lvs-node probe`: the weight the agent computes
/// is the weight in IPVS (here lowered by one open session), drain gives 0, resume restores.
#[test]
fn misc_check_dynamic_weight_is_the_ipvs_weight() {
    let p = pool(
        "ipvsmisc",
        1,
        "[weight]\nbase = 100\nmin = 1\nsessions_per_core = 1\nload_per_core = 0\n",
    );
    let conf = p.load(&["--misc-check"], "wlc");
    assert!(conf.contains("misc_dynamic"), "{conf}");
    p.wait_real(
        0,
        "weight 100 (no session)",
        Duration::from_secs(60),
        weight(100),
    );
    // One held-open session on VIP:2811 through IPVS lowers the agent's weight.
    let rs = &p.lab.reals[0];
    p.lab
        .client
        .ns
        .spawn(&format!("socat TCP:{VIP}:2811 SYSTEM:'sleep 300'"));
    let agent_weight = || -> Option<u32> {
        let (_, body) = health(&p.lab.client.ns, rs.ip, HTTP_PORT);
        body.split_whitespace()
            .find_map(|w| w.strip_prefix("weight="))
            .and_then(|w| w.parse().ok())
    };
    let w = wait_for(Duration::from_secs(15), || {
        agent_weight().filter(|w| *w < 100)
    })
    .unwrap_or_else(|| {
        panic!(
            "the agent's weight did not drop with an open session: {:?}",
            health(&p.lab.client.ns, rs.ip, HTTP_PORT)
        )
    });
    p.wait_real(
        0,
        &format!("the agent's weight {w}"),
        Duration::from_secs(40),
        |r| r.is_some_and(|r| Some(r.weight) == agent_weight()),
    );
    assert_ne!(w, 100);

    let d = lvs(&rs.ns, &p.cfgs[0], "drain");
    assert!(d.status.success());
    p.wait_real(
        0,
        "weight 0 (probe exit 2) after drain",
        Duration::from_secs(40),
        weight(0),
    );
    let u = lvs(&rs.ns, &p.cfgs[0], "resume");
    assert!(u.status.success());
    p.wait_real(
        0,
        "the agent's weight again after resume",
        Duration::from_secs(40),
        |r| r.is_some_and(|r| r.weight > 0 && Some(r.weight) == agent_weight()),
    );
}

/// The complete configuration from `lvs-node director-config --pool URL --pool URL` (the
/// default HTTP_GET on /health with `inhibit_on_failure`), read from the nodes' live
/// `/status`, is loaded by the real keepalived in the guest exactly as printed and drives
/// IPVS: both nodes in, a killed GridFTP takes its node to weight 0, a restart brings it back.
#[test]
fn pool_config_is_loaded_as_printed_and_drives_ipvs() {
    // /status (what --pool reads) is for the allowed readers: the director, the admin's
    // host (the client namespace here), and the nodes themselves (start_agent's probe).
    let allow = format!(
        "allow = [\"{}\", \"{}\", \"{}\", \"{}\"]",
        lab::dr::CLIENT_IP,
        lab::dr::DIRECTOR_IP,
        lab::dr::real_ip(0),
        lab::dr::real_ip(1)
    );
    let p = pool_with("ipvspool", 2, "", &allow);
    let mut cmd = format!("{} director-config", bins::lvs_node().display());
    for rs in &p.lab.reals {
        cmd.push_str(&format!(" --pool http://{}:{HTTP_PORT}", rs.ip));
    }
    // An admin on the director's network: the client namespace reaches the nodes' [report].
    let conf = p.lab.client.ok(&cmd);
    assert!(
        conf.contains("HTTP_GET") && conf.contains("inhibit_on_failure"),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("virtual_server {VIP} 2811")),
        "{conf}"
    );
    p.director().load_keepalived(&conf).unwrap_or_else(|e| {
        panic!("keepalived did not load the --pool config as printed: {e:#}\n{conf}")
    });
    let up = |r: Option<&Real>| r.is_some_and(|r| r.weight > 0);
    for i in 0..2 {
        p.wait_real(i, "in IPVS with a weight", Duration::from_secs(60), up);
    }
    p.lab.reals[0].ns.kill(p.gridftp[0]);
    p.wait_real(
        0,
        "weight 0 (inhibited) after GridFTP was killed",
        Duration::from_secs(40),
        weight(0),
    );
    assert!(
        up(p.director().real(&p.rs_addr(1)).as_ref()),
        "rs1 must stay in rotation:\n{}",
        p.director().ipvsadm_ln()
    );
    start_gridftp(&p.lab, 0, &p.dir.join("rs0"));
    p.wait_real(
        0,
        "a weight again after GridFTP restarted",
        Duration::from_secs(40),
        up,
    );
}

/// GridFTP with its data channels through the VIP (`director-config --gridftp-data-ports`):
/// the nodes' servers run with `-data-interface VIP`, so a passive reply advertises the VIP
/// (without it they advertise their host name's address, the real IP, and the data goes
/// straight to the node);
/// the director's firewall-mark rules, printed as comments beside the config, are run in the
/// guest as printed; the one persistent `fwmark` service then sends a client's data
/// connections to the node that holds its control connection. The transfers arrive intact,
/// and IPVS's own connection table shows the data connections to VIP:50000-50100.
#[test]
fn gridftp_data_channels_through_the_vip_with_firewall_marks() {
    let allow = format!(
        "allow = [\"{}\", \"{}\", \"{}\", \"{}\"]",
        lab::dr::CLIENT_IP,
        lab::dr::DIRECTOR_IP,
        lab::dr::real_ip(0),
        lab::dr::real_ip(1)
    );
    let mut p = pool_with("ipvsdata", 2, "", &allow);
    // The same servers, advertising the VIP instead of the RIP.
    for i in 0..2 {
        let rs = &p.lab.reals[i];
        rs.ns.kill(p.gridftp[i]);
        p.gridftp[i] = gridftp::start_data_through_vip(
            &rs.ns,
            rs.ip,
            VIP,
            &format!("rs{i}.lab"),
            &p.dir.join(&format!("rs{i}/gridftp-vip.log")),
        );
    }
    let mut cmd = format!(
        "{} director-config --gridftp-data-ports 50000-50100",
        bins::lvs_node().display()
    );
    for rs in &p.lab.reals {
        cmd.push_str(&format!(" --pool http://{}:{HTTP_PORT}", rs.ip));
    }
    let conf = p.lab.client.ok(&cmd);
    assert!(conf.contains("virtual_server fwmark 2811 {"), "{conf}");
    assert!(
        !conf.contains(&format!("virtual_server {VIP} 2811")),
        "{conf}"
    );
    // The nftables mark rules, exactly as printed (comment prefix removed).
    let rules: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("#   nft "))
        .collect();
    assert_eq!(rules.len(), 3, "{conf}");
    for r in &rules {
        p.director().vm.ok(&format!("nft {r}"));
    }
    p.director().load_keepalived(&conf).unwrap_or_else(|e| {
        panic!("keepalived did not load the --gridftp-data-ports config: {e:#}\n{conf}")
    });
    // Both nodes in the one fwmark service, with a weight.
    let fwm = || {
        p.director()
            .table()
            .into_iter()
            .find(|s| s.key == "FWM 2811")
    };
    let both = wait_for(Duration::from_secs(60), || {
        fwm().filter(|s| {
            (0..2).all(|i| {
                s.reals
                    .iter()
                    .any(|r| r.addr.starts_with(&format!("{}:", p.lab.reals[i].ip)) && r.weight > 0)
            })
        })
    });
    assert!(
        both.is_some(),
        "both nodes should be in FWM 2811 with a weight:\n{}\nkeepalived log:\n{}",
        p.director().ipvsadm_ln(),
        tail(&p.director().keepalived_log(), 20)
    );

    let (file, sum) = gridftp::make_file(&p.dir.join("data"), "f.bin", 4 << 20);
    for k in 0..3 {
        p.fetch(&file, &sum, &format!("out{k}.bin"));
    }
    // IPVS forwarded the data connections: entries to VIP:50000-50100 in its connection
    // table (they stay there in TIME_WAIT/FIN_WAIT for a while after the transfer).
    let conns = p.director().vm.ok("ipvsadm -Lnc");
    let data = conns
        .lines()
        .filter(|l| {
            l.split_whitespace().any(|w| {
                w.strip_prefix(&format!("{VIP}:"))
                    .and_then(|port| port.parse::<u16>().ok())
                    .is_some_and(|port| (50000..=50100).contains(&port))
            })
        })
        .count();
    assert!(
        data >= 3,
        "no data connections through the VIP in IPVS's table ({data}):\n{conns}"
    );
}
