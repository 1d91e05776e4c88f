//! The ACME responder on a hung webroot: the shared webroot is a FUSE file system whose
//! server answers the mount's handshake and `getattr`, and never answers a `lookup`, as a
//! dead NFS server would leave every open below it. A client fetches tokens in waves; each
//! fetch that reaches a file read is stuck in the kernel for good.
//!
//! The agent's thread count must stay bounded (a fixed number of reader threads), fetches
//! beyond them are answered 503 at once, and the director's `/health` keeps answering.
//! (Before: one OS thread per request, all stuck, so the threads grew with every wave up to
//! the task limit.)

mod daemon_util;

use daemon_util::*;
use lab::DrLab;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A FUSE server that completes INIT, answers GETATTR with a root directory, returns
/// ENOSYS to everything else and never answers LOOKUP (opcode 1) or INTERRUPT.
const HUNG_FUSE: &str = r#"
import ctypes, os, struct, sys
mnt = sys.argv[1]
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
opts = ("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % fd).encode()
if libc.mount(b"hung", mnt.encode(), b"fuse", 0, opts) != 0:
    sys.exit("mount: errno %d" % ctypes.get_errno())
print("mounted", flush=True)
def reply(unique, err, body=b""):
    os.write(fd, struct.pack("<IiQ", 16 + len(body), err, unique) + body)
while True:
    try:
        req = os.read(fd, 1 << 20)
    except OSError as e:
        if e.errno == 19:  # ENODEV: unmounted
            break
        raise
    ln, op, unique = struct.unpack_from("<IIQ", req)
    if op == 26:  # INIT
        reply(unique, 0, struct.pack("<IIIIHHIIHHI7I", 7, 31, 0, 0, 16, 16, 4096, 1, 0, 0, 0, *([0] * 7)))
    elif op == 3:  # GETATTR: the root directory
        attr = struct.pack("<QQQQQQIIIIIIIIII", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0o40755, 2, 0, 0, 0, 4096, 0)
        reply(unique, 0, struct.pack("<QII", 3600, 0, 0) + attr)
    elif op in (1, 2, 36):  # LOOKUP: hang; FORGET, INTERRUPT: no reply
        continue
    else:
        reply(unique, -38)
"#;

/// The FUSE server and its mount, stopped and unmounted even when the test fails.
struct HungMount {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for HungMount {
    fn drop(&mut self) {
        // Killing the server aborts the connection: every stuck open returns ENOTCONN.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn hung_webroot_keeps_threads_bounded_and_answers_503() {
    let lab = DrLab::one_real("acmh");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let webroot = dir.join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let script = dir.join("hungfs.py");
    std::fs::write(&script, HUNG_FUSE).unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(&webroot)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut first = String::new();
    let out = child.stdout.take().unwrap();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut first);
    let _mount = HungMount {
        child,
        dir: webroot.clone(),
    };
    assert_eq!(first, "mounted\n", "the FUSE server did not mount");

    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            extra: &format!("[acme]\nwebroot = \"{}\"\n", webroot.display()),
            ..NodeOpts::default()
        },
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "kind = \"gridftp\"",
        &format!("kind = \"tcp\"\ntarget = \"{}:{AGENT_PORT}\"", rs.ip),
    );
    std::fs::write(&cfg, text).unwrap();
    let agent = start_agent(rs, &cfg, &dir.join("agent.log"), HTTP_PORT);
    let d = &lab.director.ns;
    wait_health(d, rs.ip, HTTP_PORT, 200, Duration::from_secs(5)).expect("up");
    let before = threads(agent);

    // Waves of 40 parallel fetches (the per-source cap admits 32 at once); each curl gives
    // up after 3 s, and the agent's idle limit frees the slot, so every wave reaches the
    // file read with fresh requests.
    let (mut codes, mut fast_503, mut max_threads) = (Vec::new(), 0usize, 0usize);
    for wave in 0..5 {
        let out = lab.client.ns.run(&format!(
            "for i in $(seq 1 40); do curl -s -o /dev/null -m 3 -w '%{{http_code}} %{{time_total}}\\n' \
             http://{}/.well-known/acme-challenge/tok{wave}x$i & done; wait",
            rs.ip
        ));
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let (c, t) = l.split_once(' ').unwrap_or(("", "9"));
            if c == "503" && t.parse::<f64>().unwrap_or(9.0) < 1.0 {
                fast_503 += 1;
            }
            codes.push(c.to_string());
        }
        max_threads = max_threads.max(threads(agent));
        let t0 = Instant::now();
        let h = health(d, rs.ip, HTTP_PORT);
        assert_eq!(h.0, 200, "director's /health during wave {wave}: {h:?}");
        assert!(t0.elapsed() < Duration::from_secs(1));
        std::thread::sleep(Duration::from_secs(1));
    }
    let count = |c: &str| codes.iter().filter(|x| *x == c).count();
    eprintln!(
        "FIGURES acme_hung: threads {before} before, max {max_threads} during; {} fetches: \
         {} 503 ({fast_503} under 1 s), {} 404, {} 200, {} no answer",
        codes.len(),
        count("503"),
        count("404"),
        count("200"),
        count("000")
    );
    // 8 readers, plus a few threads the runtimes may start on their own (the count on
    // an unbounded responder grows by one per admitted fetch: about 160 here).
    assert!(
        max_threads <= before + 8 + 6,
        "reader threads must stay bounded: {before} before, {max_threads} during"
    );
    assert!(
        fast_503 >= 20,
        "fetches beyond the readers must get a fast 503"
    );
    assert_eq!(count("200"), 0);
}
