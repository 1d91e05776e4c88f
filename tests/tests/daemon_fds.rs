//! Listeners on the VIP against the directors' `/health`: an attacker on the client side
//! (80 addresses of the client's LAN, as a host with a few addresses or a small NAT pool
//! would have) holds every `[[redirect]]` slot, every public slot of the report endpoints
//! and more connections besides, while the director probes `/health` from its own address.
//!
//! The agent starts with systemd's default descriptor limits (soft 1024, hard 524288, as
//! under a unit without `LimitNOFILE=`; the hard limit is this test's own when lower). Every probe must get 200 within 1 s: the agent
//! raises its soft limit to the listeners' budget, the redirect listener caps each source,
//! and the directors' reserve on the report port stays free.
//!
//! The director here is the nftables MAC-rewrite EMULATION of LVS-DR (tests/src/dr.rs): it
//! forwards the attacker's connections to VIP:8000 to the real server as IPVS would.

mod daemon_util;

use daemon_util::*;
use lab::dr::VIP;
use lab::{DrLab, LabOpts};
use std::time::Duration;

const REDIRECT_PORT: u16 = 8000;
const FLOOD_SECS: u64 = 14;
/// Attacker addresses: 192.0.2.150 .. 192.0.2.229.
const ADDRS: usize = 80;

fn flood_script(path: &std::path::Path, rs: impl std::fmt::Display) {
    std::fs::write(
        path,
        format!(
            r#"
# Slowloris connections (one byte of a never-ending head every 2 s) from {ADDRS} source
# addresses: 1500 to the redirect listener on the VIP, 1200 to the report /health port and
# 1200 to the agent-check port. Whatever the agent closes is reopened at once.
import resource, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8000, 8000))
srcs = ["192.0.2.%d" % (150 + i) for i in range({ADDRS})]
targets = [("{VIP}", {REDIRECT_PORT})] * 1500 + [("{rs}", {HTTP_PORT})] * 1200 + [("{rs}", {AGENT_PORT})] * 1200
SLOW = b"GET / HTTP/1.1\r\nX-a: " + b"a" * 100000
def opened(i):
    s = socket.socket()
    s.setblocking(False)
    s.bind((srcs[i % len(srcs)], 0))
    s.connect_ex(targets[i])
    return s
conns = [[opened(i), 0, 0.0] for i in range(len(targets))]
start = time.time()
reopened = 0
while time.time() - start < {FLOOD_SECS}:
    now = time.time()
    for i, c in enumerate(conns):
        s, pos, due = c
        if now < due:
            continue
        try:
            try:
                if s.recv(4096) == b"":
                    raise OSError("closed")
            except BlockingIOError:
                pass
            s.send(SLOW[pos:pos + 1]); c[1] = pos + 1; c[2] = now + 2.0
        except OSError:
            s.close(); c[0] = opened(i); c[1] = 0; c[2] = now + 0.2; reopened += 1
    time.sleep(0.1)
print("reopened", reopened)
"#
        ),
    )
    .unwrap();
}

fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn soft_nofile(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("")
        .split_whitespace()
        .nth(3)
        .unwrap_or("")
        .to_string()
}

#[test]
fn client_holding_every_redirect_slot_leaves_directors_health() {
    let lab = DrLab::build(
        "fds",
        LabOpts {
            reals: 1,
            ports: vec![REDIRECT_PORT],
            ..Default::default()
        },
    );
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    for i in 0..ADDRS {
        lab.client
            .ok(&format!("ip addr add 192.0.2.{}/24 dev eth0", 150 + i));
    }
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            report_extra: &format!("allow = [\"{}\"]\npublic_health = true", lab.director.ip),
            extra: &format!(
                "[[redirect]]\nlisten = \"{VIP}:{REDIRECT_PORT}\"\ntarget = \"http://{}:{REDIRECT_PORT}\"\n",
                rs.ip
            ),
            ..NodeOpts::default()
        },
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "kind = \"gridftp\"",
        &format!("kind = \"tcp\"\ntarget = \"{}:{AGENT_PORT}\"", rs.ip),
    );
    std::fs::write(&cfg, text).unwrap();
    let log = dir.join("agent.log");
    // systemd's defaults for a service without LimitNOFILE=: soft 1024, hard 524288 (or
    // this test's own hard limit when lower: raising a hard limit needs CAP_SYS_RESOURCE).
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(524288)
        .min(524288);
    assert!(
        hard >= 8192,
        "hard RLIMIT_NOFILE {hard} is too low to run this test"
    );
    let agent = rs.ns.spawn_logged(
        &format!(
            "prlimit --nofile=1024:{hard} {} -c {} -v run",
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &log,
    );
    let d = &lab.director.ns;
    wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "agent not up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let limit = soft_nofile(agent);

    let script = dir.join("flood.py");
    flood_script(&script, rs.ip);
    let flood = lab.client.ns.spawn_logged(
        &format!("python3 {}", script.display()),
        &dir.join("flood.log"),
    );
    std::thread::sleep(Duration::from_secs(3));
    let (mut probes, mut worst, mut max_fds, mut held) = (0, 0.0f64, 0, 0usize);
    let mut failures = Vec::new();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(FLOOD_SECS - 5) {
        let out = d.run(&format!(
            "curl -s -o /dev/null -m 1 -w '%{{http_code}} %{{time_total}}' http://{}:{HTTP_PORT}/health",
            rs.ip
        ));
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, secs) = out.split_once(' ').unwrap_or(("", "9"));
        let secs: f64 = secs.trim().parse().unwrap_or(9.0);
        if code != "200" || secs >= 1.0 {
            failures.push(format!("probe #{probes}: {out}"));
        }
        worst = worst.max(secs);
        probes += 1;
        max_fds = max_fds.max(fds_of(agent));
        let est = rs.ns.run(&format!(
            "ss -Htn state established '( sport = :{REDIRECT_PORT} )' | wc -l"
        ));
        held = held.max(
            String::from_utf8_lossy(&est.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let flood_exit = lab
        .client
        .ns
        .wait(flood, Duration::from_secs(FLOOD_SECS + 10));
    let flood_log = std::fs::read_to_string(dir.join("flood.log")).unwrap_or_default();
    let agent_log = std::fs::read_to_string(&log).unwrap_or_default();
    let emfile = agent_log.matches("Too many open files").count();
    eprintln!(
        "FIGURES fds: soft limit {limit} (started at 1024); {probes} director probes, {} failed, \
         slowest {:.1} ms; redirect connections held {held}; agent fds max {max_fds}; \
         EMFILE log lines {emfile}; flood: {}",
        failures.len(),
        worst * 1000.0,
        flood_log.trim()
    );
    assert_eq!(flood_exit, Some(0), "flood client failed: {flood_log}");
    assert!(probes >= 5, "only {probes} probes");
    assert!(
        held >= 1000,
        "the attacker must hold the redirect slots for the test to mean anything: {held}"
    );
    assert!(
        failures.is_empty(),
        "director /health under the flood: {failures:?}; EMFILE lines {emfile}; agent log tail: {}",
        agent_log
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert_eq!(emfile, 0, "the agent ran out of descriptors");
    assert_eq!(health(d, rs.ip, HTTP_PORT).0, 200);
}

/// An IPv6 client using 40 addresses of its /64 counts as one source: it holds at most
/// `report.max_per_source` (16) of the public slots of `/health` over IPv6, not 16 per
/// address, and the director (in the same /64 on this lab's LAN, counted by its own
/// address as a listed director) still reads `/health`. (Before: the cap was per /128, so
/// the client held 16 × 40.)
#[test]
fn ipv6_client_is_capped_per_64() {
    let lab = DrLab::build(
        "fds6",
        LabOpts {
            reals: 1,
            ipv6: true,
            ..Default::default()
        },
    );
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    for i in 1..=40 {
        lab.client
            .ok(&format!("ip -6 addr add 2001:db8::1:{i}/64 dev eth0 nodad"));
    }
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            report_extra: &format!(
                "http6 = \"[{}]:{HTTP_PORT}\"\nallow = [\"{}\", \"{}\"]\npublic_health = true",
                rs.ip6, lab.director.ip, lab.director.ip6
            ),
            ..NodeOpts::default()
        },
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "kind = \"gridftp\"",
        &format!("kind = \"tcp\"\ntarget = \"{}:{AGENT_PORT}\"", rs.ip),
    );
    std::fs::write(&cfg, text).unwrap();
    start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    // From the director's own address (its namespace also holds the VIP6, which the
    // kernel may pick as the source).
    let probe6 = || {
        let out = lab.director.ns.run(&format!(
            "curl -s -o /dev/null -m 1 --interface {} -w '%{{http_code}}' http://[{}]:{HTTP_PORT}/health",
            lab.director.ip6, rs.ip6
        ));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        lab::wait_for(Duration::from_secs(5), || (probe6() == "200").then_some(())).is_some(),
        "director's /health over IPv6 before the flood: {} {}",
        probe6(),
        std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
    );
    let script = dir.join("flood6.py");
    std::fs::write(
        &script,
        format!(
            r#"
import socket, time
srcs = ["2001:db8::1:%d" % i for i in range(1, 41)]
SLOW = b"GET /health HTTP/1.1\r\nX-a: " + b"a" * 100000
def opened(i):
    s = socket.socket(socket.AF_INET6)
    s.setblocking(False)
    s.bind((srcs[i % 40], 0))
    s.connect_ex(("{ip6}", {HTTP_PORT}))
    return s
conns = [[opened(i), 0, 0.0] for i in range(640)]
start = time.time()
while time.time() - start < 10:
    now = time.time()
    for i, c in enumerate(conns):
        s, pos, due = c
        if now < due:
            continue
        try:
            try:
                if s.recv(4096) == b"":
                    raise OSError("closed")
            except BlockingIOError:
                pass
            s.send(SLOW[pos:pos + 1]); c[1] = pos + 1; c[2] = now + 1.0
        except OSError:
            s.close(); c[0] = opened(i); c[1] = 0; c[2] = now + 0.5
    time.sleep(0.1)
"#,
            ip6 = rs.ip6
        ),
    )
    .unwrap();
    let flood = lab.client.ns.spawn_logged(
        &format!("python3 {}", script.display()),
        &dir.join("flood6.log"),
    );
    std::thread::sleep(Duration::from_secs(3));
    let mut held = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..10 {
        let out = rs.ns.run(&format!(
            "ss -Htn state established '( sport = :{HTTP_PORT} and dst 2001:db8::1:0/112 )' | wc -l"
        ));
        held.push(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<usize>()
                .unwrap_or(0),
        );
        let p = probe6();
        if p != "200" {
            failed.push(p);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    lab.client.ns.kill(flood);
    held.sort_unstable();
    eprintln!(
        "FIGURES fds6: connections the /64 held, sorted samples: {held:?}; director probes failed: {failed:?}"
    );
    assert!(
        failed.is_empty(),
        "director's /health over IPv6 under the flood: {failed:?}; agent log tail: {}",
        std::fs::read_to_string(dir.join("agent.log"))
            .unwrap_or_default()
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    // 16 admitted; a few more may sit in the accept queue for an instant before the gate
    // closes them.
    assert!(
        held[held.len() / 2] <= 24,
        "one /64 must hold at most report.max_per_source slots: {held:?}"
    );
}
