//! The check kinds against real services in the namespace lab (`http` against a real HTTP
//! server, `xrootd` against Debian's xrootd, `command` with a real shell plugin, `filesystem`
//! on a tmpfs), and the probe hygiene a root agent needs: no orphans, no symlink or FIFO
//! tricks in a shared directory, a hung external tool never freezing `/health`, SIGTERM
//! always ending the agent.

mod daemon_util;

use daemon_util::*;
use lab::{wait_for, DrLab};
use std::path::Path;
use std::time::{Duration, Instant};

/// One real server with the data plane set up by hand and no GridFTP: `extra` holds the
/// checks. Returns the lab, its scratch dir and the config path.
fn one_node(tag: &str, extra: &str) -> (DrLab, TestDir, std::path::PathBuf) {
    let lab = DrLab::one_real(tag);
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            extra,
            ..NodeOpts::default()
        },
    );
    // No GridFTP in these tests: drop the default gridftp check.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 1\n",
        "",
    );
    std::fs::write(&cfg, text).unwrap();
    (lab, dir, cfg)
}

fn down_with(lab: &DrLab, what: &str, want: &str) -> String {
    let rs = &lab.reals[0];
    let d = &lab.director.ns;
    wait_for(Duration::from_secs(8), || {
        let (code, body) = health(d, rs.ip, HTTP_PORT);
        (code == 503 && body.contains(want)).then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: no 503 with {want:?}; last {:?}",
            health(d, rs.ip, HTTP_PORT)
        )
    })
}

fn up(lab: &DrLab, what: &str, log: &Path) {
    let rs = &lab.reals[0];
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(8),
    )
    .unwrap_or_else(|| {
        panic!(
            "{what}: not up: {:?}\n{}",
            health(&lab.director.ns, rs.ip, HTTP_PORT),
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
}

/// PIDs of live processes whose command line is exactly `argv`.
fn pids_with_cmdline(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want) {
            v.push(pid);
        }
    }
    v
}

/// Kills, on drop, the processes with this exact command line (the marked sleeps a test's
/// plugin or fake tool started), even when the test fails.
struct KillMarked(Vec<String>);

impl Drop for KillMarked {
    fn drop(&mut self) {
        let argv: Vec<&str> = self.0.iter().map(String::as_str).collect();
        for p in pids_with_cmdline(&argv) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits for the agent to exit after SIGTERM; returns how long it took.
fn sigterm(ns: &lab::Netns, pid: u32, limit: Duration) -> Duration {
    let t = Instant::now();
    ns.signal(pid, nix::sys::signal::Signal::SIGTERM);
    let code = ns.wait(pid, limit);
    assert_eq!(
        code,
        Some(0),
        "agent did not exit within {limit:?} of SIGTERM"
    );
    t.elapsed()
}

#[test]
fn http_check_follows_a_real_http_server() {
    let (lab, dir, cfg) = one_node(
        "chttp",
        "[[check]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:8000/ok.txt\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1\n",
    );
    let rs = &lab.reals[0];
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("ok.txt"), "ok").unwrap();
    let server = rs.ns.spawn_logged(
        &format!(
            "python3 -m http.server 8000 --bind 127.0.0.1 --directory {}",
            www.display()
        ),
        &dir.join("www.log"),
    );
    let log = dir.join("agent.log");
    let agent = start_agent(rs, &cfg, &log, HTTP_PORT);
    up(&lab, "http server running", &log);
    std::fs::remove_file(www.join("ok.txt")).unwrap();
    down_with(&lab, "page gone", "web: HTTP 404 (expected 200)");
    std::fs::write(www.join("ok.txt"), "ok").unwrap();
    up(&lab, "page back", &log);
    rs.ns.kill(server);
    down_with(&lab, "server stopped", "web: connection refused");
    sigterm(&rs.ns, agent, Duration::from_secs(5));
}

#[test]
fn xrootd_check_against_a_real_xrootd() {
    let (lab, dir, cfg) = one_node(
        "cxrd",
        "[[check]]\nname = \"xrootd\"\nkind = \"xrootd\"\ntarget = \"127.0.0.1:1094\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1\n",
    );
    let rs = &lab.reals[0];
    // Debian's xrootd refuses to run as root: run it with -R nobody; its log directory must
    // be writable by nobody, or it exits without a word.
    let data = dir.join("xrd-data");
    let logs = dir.join("xrd-log");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    rs.ok(&format!(
        "chown nobody {} {}",
        logs.display(),
        data.display()
    ));
    let conf = dir.join("xrootd.cfg");
    std::fs::write(
        &conf,
        format!("all.export {}\nxrd.port 1094\n", data.display()),
    )
    .unwrap();
    let xrd = rs.ns.spawn_logged(
        &format!(
            "xrootd -R nobody -c {} -l {}/xrootd.log -n lab",
            conf.display(),
            logs.display()
        ),
        &dir.join("xrootd.out"),
    );
    wait_for(Duration::from_secs(10), || {
        rs.ns
            .run(&format!(
                "xrdfs root://127.0.0.1:1094 ls {}",
                data.display()
            ))
            .status
            .success()
            .then_some(())
    })
    .expect("xrootd did not come up");
    let log = dir.join("agent.log");
    let agent = start_agent(rs, &cfg, &log, HTTP_PORT);
    up(&lab, "xrootd running", &log);
    rs.ns.kill(xrd);
    let body = down_with(&lab, "xrootd killed", "xrootd: connection refused");
    assert!(body.starts_with("state=down"), "{body}");
    sigterm(&rs.ns, agent, Duration::from_secs(5));
}

/// A plugin that starts a background child and then hangs, killed by the check timeout
/// every probe: nothing it started may outlive the probe.
#[test]
fn command_check_leaves_no_orphans() {
    // A sleep length unique to this run, so only processes this test caused are counted.
    let mark = format!("4242.{}", std::process::id());
    let _cleanup = KillMarked(vec!["sleep".into(), mark.clone()]);
    let (lab, dir, cfg) = one_node(
        "ccmd",
        &format!(
            "[[check]]\nname = \"plugin\"\nkind = \"command\"\ncommand = [\"/bin/sh\", \"-c\", \"sleep {mark} & sleep {mark}\"]\ninterval = \"300ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n"
        ),
    );
    let rs = &lab.reals[0];
    let log = dir.join("agent.log");
    let agent = rs.ns.spawn_logged(
        &format!(
            "{} -c {} -v run",
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &log,
    );
    down_with(&lab, "hanging plugin", "plugin: timed out after 100ms");
    // 4 s = about 13 probes, each starting two sleeps.
    let mut most = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        most = most.max(pids_with_cmdline(&["sleep", &mark]).len());
        std::thread::sleep(Duration::from_millis(100));
    }
    let leaked = pids_with_cmdline(&["sleep", &mark]).len();
    sigterm(&rs.ns, agent, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let after = pids_with_cmdline(&["sleep", &mark]);
    assert!(
        most <= 2 && leaked <= 2,
        "plugin processes piled up: at most {most} at once, {leaked} at the end"
    );
    assert_eq!(after.len(), 0, "plugin processes outlived the agent");
}

/// `user` drops root, and the agent's own systemd variables never reach a plugin.
#[test]
fn command_check_runs_as_user_with_a_clean_environment() {
    let (lab, dir, cfg) = one_node(
        "cenv",
        "[[check]]\nname = \"whoami\"\nkind = \"command\"\nuser = \"nobody\"\ncommand = [\"/bin/sh\", \"-c\", \"echo $(id -un) n=${NOTIFY_SOCKET:-none} w=${WATCHDOG_USEC:-none}; exit 2\"]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1\n",
    );
    let rs = &lab.reals[0];
    let sock = dir.join("notify.sock");
    let _s = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    let agent = rs.ns.spawn_logged(
        &format!(
            "env NOTIFY_SOCKET={} WATCHDOG_USEC=5000000 {} -c {} run",
            sock.display(),
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &dir.join("agent.log"),
    );
    down_with(&lab, "plugin", "whoami: CRITICAL nobody n=none w=none");
    sigterm(&rs.ns, agent, Duration::from_secs(5));
}

/// The write probe of a `filesystem` check runs as root in a directory others may write to.
/// A symlink or a FIFO planted at the name it used to use (`.lvs-node-check-<agent pid>`)
/// must neither redirect the write nor wedge the node, and SIGTERM still ends the agent.
#[test]
fn filesystem_probe_ignores_planted_symlink_and_fifo() {
    let (lab, dir, cfg) = one_node("cfsw", "");
    let rs = &lab.reals[0];
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "[[check]]\nname = \"shared\"\nkind = \"filesystem\"\npath = \"{}\"\nmin_free = \"1%\"\ninterval = \"300ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 1\n",
            shared.display()
        );
    std::fs::write(&cfg, text).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    // The agent gets its own mount namespace with a small tmpfs as the shared file system.
    let log = dir.join("agent.log");
    let agent = rs.ns.spawn_logged(
        &format!(
            "unshare -m sh -c 'mount -t tmpfs -o size=4m tmpfs {s} && chmod 1777 {s} && exec {b} -c {c} -v run'",
            s = shared.display(),
            b = lab::bins::lvs_node().display(),
            c = cfg.display()
        ),
        &log,
    );
    let in_agent_mnt = |cmd: &str| rs.ok(&format!("nsenter -t {agent} -m sh -c '{cmd}'"));
    // Plant before the agent answers (its first probe may already have run).
    let old = shared.join(format!(".lvs-node-check-{agent}"));
    wait_for(Duration::from_secs(5), || {
        rs.ns
            .run(&format!(
                "nsenter -t {agent} -m sh -c 'grep -q \" {} \" /proc/self/mountinfo'",
                shared.display()
            ))
            .status
            .success()
            .then_some(())
    })
    .expect("tmpfs not mounted");
    in_agent_mnt(&format!("ln -s {} {}", victim.display(), old.display()));
    up(&lab, "symlink planted", &log);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious",
        "the write probe followed a planted symlink"
    );
    in_agent_mnt(&format!("rm {o} && mkfifo {o}", o = old.display()));
    // Several probes later the node is still up: nothing blocks on the FIFO.
    std::thread::sleep(Duration::from_secs(2));
    let (code, body) = health(&lab.director.ns, rs.ip, HTTP_PORT);
    assert_eq!(code, 200, "a planted FIFO wedged the node: {body}");
    let took = sigterm(&rs.ns, agent, Duration::from_secs(5));
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
}

/// A hung `nft` (a fake one first in PATH that never returns: deliberate fault injection,
/// the real nft never hangs on demand) must not freeze `/health`: the data plane runs off
/// the reporters' runtime and every tool has a timeout.
#[test]
fn a_hung_nft_never_freezes_health() {
    let lab = DrLab::one_real("cnft");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let d = &lab.director.ns;
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            manage_dataplane: true,
            extra: "[arp]\nmethod = \"nftables\"\n",
            ..NodeOpts::default()
        },
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 1\n",
        "",
    );
    std::fs::write(&cfg, text).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let flag = dir.join("hang");
    let mark = format!("4343.{}", std::process::id());
    let _cleanup = KillMarked(vec!["sleep".into(), mark.clone()]);
    let real = String::from_utf8(lab::netns::host("command -v nft").stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(!real.is_empty(), "nft not installed");
    std::fs::write(
        bin.join("nft"),
        format!(
            "#!/bin/sh\nif [ -e {} ]; then exec sleep {mark}; fi\nexec {real} \"$@\"\n",
            flag.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("nft"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let log = dir.join("agent.log");
    let agent = rs.ns.spawn_logged(
        &format!(
            "env PATH={}:/usr/sbin:/usr/bin:/sbin:/bin {} -c {} -v run",
            bin.display(),
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &log,
    );
    up(&lab, "converged with nftables", &log);
    std::fs::write(&flag, "").unwrap();
    // For longer than the tool timeout (10 s): every probe answers within 1 s.
    let t = Instant::now();
    let mut codes = Vec::new();
    while t.elapsed() < Duration::from_secs(14) {
        let out = d.run(&format!(
            "curl -s -o /dev/null -m 1 -w '%{{http_code}} %{{time_total}}' http://{}:{HTTP_PORT}/health",
            rs.ip
        ));
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, secs) = out.split_once(' ').unwrap_or(("000", "9"));
        assert!(
            code != "000" && secs.parse::<f64>().unwrap_or(9.0) < 1.0,
            "/health froze while nft hangs: {out} after {:?}\n{}",
            t.elapsed(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        codes.push(code.to_string());
        std::thread::sleep(Duration::from_millis(300));
    }
    // A repair cycle runs nft more than once, each bounded by the 10 s tool timeout: the
    // node goes down with the tool named.
    wait_for(Duration::from_secs(30), || {
        let (code, body) = health(d, rs.ip, HTTP_PORT);
        (code == 503 && body.contains("did not finish within 10s")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not down with the hung tool named: {:?}",
            health(d, rs.ip, HTTP_PORT)
        )
    });
    let took = sigterm(&rs.ns, agent, Duration::from_secs(5));
    std::fs::remove_file(&flag).unwrap();
    eprintln!("codes while nft hung: {codes:?}; SIGTERM took {took:?}");
}
