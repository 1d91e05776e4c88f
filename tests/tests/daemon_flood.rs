//! One client floods the agent's report listeners with keep-alive and slowloris connections
//! while a director keeps probing: every director probe must get its answer within 1 s, and
//! the agent's memory stays bounded. Figures (probe latencies, RSS) go to docs/security.md.

mod daemon_util;

use daemon_util::*;
use lab::DrLab;
use std::path::Path;
use std::time::Duration;

/// Connections the flooding client keeps open (reconnecting whatever the agent closes).
const FLOOD_CONNS: usize = 2000;
const FLOOD_SECS: u64 = 12;
/// `report.max_per_source`'s default.
const PER_SOURCE: usize = 16;

fn flood_script(path: &Path, ip: impl std::fmt::Display, port: u16) {
    std::fs::write(
        path,
        format!(
            r#"
# Half keep-alive clients (a full request every 2 s on the same connection), half slowloris
# (one byte of a never-ending request head per second). Whatever the server closes is
# reopened at once, for {FLOOD_SECS} s. Counts: connections whose TCP handshake completed,
# those the server closed before sending a byte (the gate refuses by closing), replies.
import resource, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
ip, port, n, secs = "{ip}", {port}, {FLOOD_CONNS}, {FLOOD_SECS}
REQ = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
SLOW = b"GET /health HTTP/1.1\r\nX-a: " + b"a" * 100000
def opened():
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((ip, port))
    return s
# [socket, slow, bytes sent, next due, connected, bytes received]
conns = [[opened(), i % 2, 0, 0.0, False, 0] for i in range(n)]
start = time.time()
reopened = answered = connected = unanswered = failed = 0
while time.time() - start < secs:
    now = time.time()
    for c in conns:
        s, slow, pos, due, up, got = c
        if now < due:
            continue
        try:
            if not up:
                try:
                    s.getpeername()
                except OSError:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        failed += 1
                        raise OSError("connect failed")
                    continue
                c[4] = True
                connected += 1
            try:
                d = s.recv(4096)
                if d == b"":
                    raise OSError("closed")
                answered += 1
                c[5] += len(d)
            except BlockingIOError:
                pass
            if slow:
                s.send(SLOW[pos:pos + 1]); c[2] = pos + 1; c[3] = now + 1.0
            else:
                s.send(REQ); c[3] = now + 2.0
        except OSError:
            if c[4] and c[5] == 0:
                unanswered += 1
            s.close(); c[:] = [opened(), slow, 0, now + 0.2, False, 0]; reopened += 1
    time.sleep(0.1)
print("connected", connected, "unanswered", unanswered, "failed", failed, "reopened", reopened, "answered", answered)
"#
        ),
    )
    .unwrap();
}

fn vm(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn flood_while_director_probes(tag: &str, report_extra: &str) {
    let lab = DrLab::one_real(tag);
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            report_extra: &report_extra.replace("DIRECTOR", &lab.director.ip.to_string()),
            // No GridFTP here: a tcp check on the agent's own port keeps the node up.
            extra: "",
            ..NodeOpts::default()
        },
    );
    // Replace the gridftp check by one that passes without a GridFTP server.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "kind = \"gridftp\"",
        &format!("kind = \"tcp\"\ntarget = \"{}:{AGENT_PORT}\"", rs.ip),
    );
    std::fs::write(&cfg, text).unwrap();
    let agent = start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    let d = &lab.director.ns;
    wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(5)).expect("up");
    let rss_before = vm(agent, "VmRSS");

    let script = dir.join("flood.py");
    flood_script(&script, rs.ip, HTTP_PORT);
    let flood = lab.client.ns.spawn_logged(
        &format!("python3 {}", script.display()),
        &dir.join("flood.log"),
    );
    // Let the flood take every slot it can.
    std::thread::sleep(Duration::from_secs(2));
    let mut worst = 0.0f64;
    let mut probes = 0;
    let mut rss_max = 0;
    let mut held_max = 0;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(FLOOD_SECS - 4) {
        let out = d.run(&format!(
            "curl -s -o /dev/null -m 1 -w '%{{http_code}} %{{time_total}}' http://{}:{HTTP_PORT}/health",
            rs.ip
        ));
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, secs) = out.split_once(' ').unwrap_or(("", "9"));
        let secs: f64 = secs.trim().parse().unwrap_or(9.0);
        assert_eq!(
            code,
            "200",
            "director probe #{probes} under flood: {out} (agent log: {})",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        );
        assert!(secs < 1.0, "director probe #{probes} took {secs}s");
        let line = agent_line(d, rs.ip);
        assert!(
            line.starts_with("up ready"),
            "agent-check under flood: {line:?}"
        );
        worst = worst.max(secs);
        probes += 1;
        rss_max = rss_max.max(vm(agent, "VmRSS"));
        // The flood's connections the agent holds (accepted, not yet closed).
        let held = rs
            .ok(&format!(
                "ss -Htnp state established '( sport = :{HTTP_PORT} and dst {} )'",
                lab.client.ip
            ))
            .lines()
            .filter(|l| l.contains("\"lvs-node\""))
            .count();
        held_max = held_max.max(held);
        std::thread::sleep(Duration::from_millis(200));
    }
    let flood_exit = lab
        .client
        .ns
        .wait(flood, Duration::from_secs(FLOOD_SECS + 10));
    let flood_log = std::fs::read_to_string(dir.join("flood.log")).unwrap_or_default();
    assert_eq!(flood_exit, Some(0), "flood client failed: {flood_log}");
    let hwm = vm(agent, "VmHWM");
    eprintln!(
        "FIGURES {tag}: {FLOOD_CONNS} flood connections for {FLOOD_SECS}s ({}); \
         {probes} director probes, all 200, slowest {:.1} ms; agent RSS {rss_before} KiB before, \
         max {rss_max} KiB during, VmHWM {hwm} KiB; at most {held_max} flood connections held",
        flood_log.trim(),
        worst * 1000.0
    );
    assert!(probes >= 5, "only {probes} probes");
    // The flood was real: every connection's handshake completed, and the agent closed
    // all but its per-source share (16, `report.max_per_source`) before a byte.
    let count = |key: &str| -> usize {
        let words: Vec<&str> = flood_log.split_whitespace().collect();
        let i = words
            .iter()
            .position(|w| *w == key)
            .unwrap_or_else(|| panic!("no {key} in the flood's output: {flood_log}"));
        words[i + 1].parse().unwrap()
    };
    assert!(
        count("connected") >= FLOOD_CONNS,
        "the flood did not open its connections: {flood_log}"
    );
    assert!(
        count("unanswered") >= FLOOD_CONNS - PER_SOURCE,
        "the per-source cap did not refuse the excess: {flood_log}"
    );
    assert!(
        (1..=PER_SOURCE).contains(&held_max),
        "the agent held {held_max} of the flood's connections at once (cap {PER_SOURCE})"
    );
    // Debug build; the flood must not grow the agent without bound.
    assert!(hwm < 64 * 1024, "agent peak RSS {hwm} KiB");
    // And it still answers normally afterwards.
    assert_eq!(health(d, rs.ip, HTTP_PORT).0, 200);
}

/// No allow list: nobody is a known director, so the per-source cap alone keeps one client
/// from taking every slot.
#[test]
fn flood_from_one_client_cannot_starve_others_without_allow_list() {
    flood_while_director_probes("fl1", "");
}

/// Directors listed, and `/health` public: the flood gets at most its per-source share of
/// the public slots, and the directors' reserve stays free.
#[test]
fn flood_from_one_client_leaves_directors_their_slots() {
    flood_while_director_probes("fl2", "allow = [\"DIRECTOR\"]\npublic_health = true");
}
