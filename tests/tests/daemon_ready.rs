//! `lvs-node run` tells systemd READY=1 only once the data plane has converged: a unit
//! ordered after it (GridFTP) must never start on a node without its VIP or ARP
//! suppression. The agent runs in a namespace under a real NOTIFY_SOCKET (a unix datagram
//! socket this test binds, as systemd does for Type=notify), and each READY=1 is checked
//! against the namespace's state at the moment it arrives.
//!
//! - The NIC appears only seconds after the start: no READY=1 before it, READY=1 after,
//!   with the VIP on lo and the ARP sysctls set.
//! - A convergence that can never succeed (the `fault-injection` hook fails step 1 every
//!   time): no READY=1 at all, exit 4 after `[daemon] start_timeout`, an error naming it.

use lab::dr::VIP;
use lab::netns::unique_prefix;
use lab::{bins, Netns};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(tag: &str) -> (Netns, Scratch, UnixDatagram, PathBuf) {
    lab::netns::require_root();
    let prefix = unique_prefix(tag);
    let ns = Netns::new(&format!("{prefix}n"));
    ns.disable_ipv6();
    let dir = std::env::temp_dir().join(format!("{prefix}-ready"));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    (ns, Scratch(dir), sock, sock_path)
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("node.toml");
    std::fs::write(
        &p,
        format!(
            "interface = \"eth0\"\nreal_ip = \"192.0.2.11\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{VIP}\"\nports = [2811]\n\
             [daemon]\ncontrol_socket = \"{d}/control.sock\"\nrecheck_interval = \"1s\"\n{extra}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    p
}

/// The namespace's data plane as the agent should leave it: VIP on lo, ARP sysctls.
fn converged(ns: &Netns) -> Result<(), String> {
    let lo = ns.ok("ip -o addr show dev lo");
    if !lo.contains(&format!("{VIP}/32")) {
        return Err(format!("VIP {VIP} not on lo:\n{lo}"));
    }
    let s = ns.ok("sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce");
    if s.split_whitespace().collect::<Vec<_>>() != ["1", "2"] {
        return Err(format!("arp_ignore/arp_announce not 1/2: {s}"));
    }
    Ok(())
}

/// Waits up to `bound` for READY=1; on arrival checks at once whether the data plane had
/// converged at that moment.
fn first_ready(sock: &UnixDatagram, ns: &Netns, bound: Duration) -> Option<Result<(), String>> {
    let deadline = Instant::now() + bound;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l == "READY=1") {
                return Some(converged(ns));
            }
        }
    }
    None
}

fn spawn_agent(ns: &Netns, dir: &Path, cfg: &Path, sock: &Path, env: &str) -> u32 {
    ns.spawn_logged(
        &format!(
            "env NOTIFY_SOCKET={} {env} {} --config {} run",
            sock.display(),
            bins::lvs_node().display(),
            cfg.display()
        ),
        &dir.join("agent.log"),
    )
}

fn log(dir: &Scratch) -> String {
    std::fs::read_to_string(dir.0.join("agent.log")).unwrap_or_default()
}

#[test]
fn ready_waits_for_the_nic_and_the_vip() {
    let (ns, dir, sock, sock_path) = setup("readynic");
    let cfg = config(&dir.0, "start_timeout = \"60s\"");
    // No eth0 yet: the first attempts cannot converge.
    let pid = spawn_agent(&ns, &dir.0, &cfg, &sock_path, "");
    let early = first_ready(&sock, &ns, Duration::from_secs(4));
    assert!(
        early.is_none(),
        "READY=1 sent while the interface was missing (nothing can have converged); log:\n{}",
        log(&dir)
    );
    assert_eq!(
        ns.wait(pid, Duration::from_millis(1)),
        None,
        "the agent exited long before start_timeout; log:\n{}",
        log(&dir)
    );
    assert!(
        converged(&ns).is_err(),
        "the VIP is up without its interface?"
    );
    ns.ok("ip link add eth0 type veth peer name peer0 && ip link set peer0 up && ip addr add 192.0.2.11/24 dev eth0 && ip link set eth0 up");
    // Retried every second: READY=1 follows within a few seconds, even on a loaded machine.
    match first_ready(&sock, &ns, Duration::from_secs(30)) {
        None => panic!(
            "no READY=1 within 30 s of the interface appearing; log:\n{}",
            log(&dir)
        ),
        Some(Err(e)) => panic!("READY=1 arrived before the data plane converged: {e}"),
        Some(Ok(())) => {}
    }
    assert!(
        log(&dir).contains("cannot converge the data plane"),
        "the failed first attempts are not in the log:\n{}",
        log(&dir)
    );
    ns.kill(pid);
}

#[test]
fn no_ready_and_exit_4_when_the_data_plane_never_converges() {
    let (ns, dir, sock, sock_path) = setup("readyfail");
    ns.ok("ip link add eth0 type veth peer name peer0 && ip link set peer0 up && ip addr add 192.0.2.11/24 dev eth0 && ip link set eth0 up");
    let cfg = config(&dir.0, "start_timeout = \"3s\"");
    // The fault-injection hook fails step 1 of every attempt (and rolls it back).
    let t0 = Instant::now();
    let pid = spawn_agent(&ns, &dir.0, &cfg, &sock_path, "LVS_NODE_FAIL_AT_STEP=1");
    let ready = first_ready(&sock, &ns, Duration::from_secs(6));
    assert!(
        ready.is_none(),
        "READY=1 sent although the data plane could never converge; log:\n{}",
        log(&dir)
    );
    let code = ns.wait(pid, Duration::from_secs(30));
    let took = t0.elapsed();
    assert_eq!(
        code,
        Some(4),
        "exit code (4: not converged within start_timeout); log:\n{}",
        log(&dir)
    );
    // It retried until start_timeout, not just once.
    assert!(
        took >= Duration::from_secs(3),
        "gave up after {took:?}, before start_timeout (3s)"
    );
    let l = log(&dir);
    assert!(
        l.contains("start_timeout (3s)") && l.contains("READY=1 not sent"),
        "the error must name start_timeout and say READY=1 was not sent:\n{l}"
    );
    assert!(converged(&ns).is_err(), "a failed start left the VIP up");
}
