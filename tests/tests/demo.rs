//! The one-command lab demo (`tests/demo.sh`, binary `lvs-lab-demo`) end to end: every step
//! passes, and nothing of the lab is left behind after a normal exit, a SIGTERM in the
//! middle, or `--keep` followed by `--teardown`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DEMO: &str = env!("CARGO_BIN_EXE_lvs-lab-demo");
const STEPS: [&str; 5] = [
    "1. Build the lab",
    "2. ARP for the VIP is answered only by the director",
    "3. Files fetched through the VIP with globus-url-copy",
    "4. One GridFTP killed: dropped from rotation in about a second",
    "5. One node drained while a long transfer through the VIP finishes intact",
];

/// The demos run one at a time: the detection-time step should not share the CPU with
/// another demo.
static SERIAL: Mutex<()> = Mutex::new(());

fn prefix(tag: &str) -> String {
    format!("lvdt{}{tag}", std::process::id() % 100_000)
}

fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// Processes whose command line names the lab's work dir (gridftp logs, agent configs).
fn lab_processes(prefix: &str) -> Vec<String> {
    let dir = format!("/tmp/{prefix}-demo/");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(&dir) {
                found.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn assert_gone(prefix: &str) {
    assert_eq!(namespaces(prefix), Vec::<String>::new(), "namespaces left");
    // A query the demo had in flight (bounded: `socat -t 2`, `curl -m 2`) may outlive it
    // by a moment; anything still there after 5 s was left behind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !lab_processes(prefix).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(
        lab_processes(prefix),
        Vec::<String>::new(),
        "processes left"
    );
    let etc: Vec<_> = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(etc, Vec::<String>::new(), "/etc/netns entries left");
    assert!(
        !std::path::Path::new(&format!("/tmp/{prefix}-demo")).exists(),
        "work dir left"
    );
}

/// Runs the demo to completion with a deadline; returns (exit code, stdout).
fn run(args: &[&str], deadline: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(DEMO)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = reader.join().unwrap();
    eprintln!("{text}");
    (status.code(), text)
}

#[test]
fn demo_passes_every_step_and_leaves_nothing() {
    lab::require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = prefix("a");
    let t0 = Instant::now();
    let (code, out) = run(&["--prefix", &p], Duration::from_secs(240));
    eprintln!("demo took {:?}", t0.elapsed());
    assert_eq!(code, Some(0), "the demo failed");
    for s in STEPS {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with("✔") && l.contains(s)),
            "no ✔ for step `{s}` in the summary"
        );
        assert!(out.contains(&format!("━━━ {s}")), "no heading for `{s}`");
    }
    assert!(!out.contains('✘'), "a check failed");
    assert!(out.contains("✔ all steps passed"));
    // After tests/setup.sh the demo runs on the real director, not the emulation fallback.
    assert!(
        out.contains("director: real IPVS") && out.contains("ipvsadm -Ln"),
        "the demo fell back to the nftables emulation"
    );
    assert_gone(&p);
}

#[test]
fn sigterm_in_the_middle_tears_everything_down() {
    lab::require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = prefix("b");
    let mut child = Command::new(DEMO)
        .args(["--prefix", &p])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    // Stop it once the lab is fully up (GridFTP, agents, HAProxy running).
    for l in lines.by_ref() {
        let l = l.unwrap();
        seen.push_str(&l);
        seen.push('\n');
        if l.contains("━━━ 3.") {
            break;
        }
    }
    assert!(
        seen.contains("━━━ 3."),
        "demo never reached step 3:\n{seen}"
    );
    assert!(!namespaces(&p).is_empty());
    assert!(!lab_processes(&p).is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let st = child.wait().unwrap();
    let rest = rest.join("\n");
    eprintln!("{seen}{rest}");
    assert_eq!(st.code(), Some(130), "exit after SIGTERM");
    assert!(rest.contains("tearing the lab down"), "{rest}");
    assert_gone(&p);
}

#[test]
fn keep_leaves_the_lab_up_and_teardown_removes_it() {
    lab::require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = prefix("c");
    let (code, out) = run(&["--keep", "--prefix", &p], Duration::from_secs(240));
    let kept = namespaces(&p);
    let procs = lab_processes(&p);
    // Tear down before asserting, so a failure leaves nothing behind.
    let (tcode, tout) = run(&["--teardown", &p], Duration::from_secs(30));
    assert_eq!(code, Some(0), "the demo failed");
    // The real director is a qemu guest on the bridge (5 namespaces); the nftables
    // emulation fallback has its own director namespace (6).
    let real = out.contains("director: real IPVS");
    assert_eq!(
        kept.len(),
        if real { 5 } else { 6 },
        "bridge, client, {}3 real servers: {kept:?}",
        if real { "" } else { "director (emulation), " }
    );
    assert!(
        procs.iter().any(|c| c.contains("globus-gridftp-server"))
            && procs.iter().any(|c| c.contains(" run")),
        "GridFTP and the agents should keep running: {procs:?}"
    );
    assert!(out.contains(&format!("--teardown {p}")), "{out}");
    assert!(out.contains("lvs-node") && out.contains("status"), "{out}");
    assert_eq!(tcode, Some(0), "{tout}");
    assert_gone(&p);
}
