//! A real globus-gridftp-server in a lab namespace (anonymous, no GSI), test files with
//! checksums, and globus-url-copy from the client.
//!
//! The server needs a hostname that resolves: it runs under `unshare -u` with its own
//! hostname, and the namespace's /etc/netns/NS/hosts (bind-mounted by `ip netns exec`)
//! names it.

use crate::netns::{wait_for, Netns};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub const PORT: u16 = 2811;

/// Starts the server on port 2811 with `-data-interface ip`; returns its PID once it
/// accepts connections.
pub fn start(ns: &Netns, ip: Ipv4Addr, hostname: &str, log: &Path) -> u32 {
    start_with(ns, ip, hostname, log, "")
}

/// `start` with extra server options, e.g. `-Z FILE` (one line per transfer).
pub fn start_with(ns: &Netns, ip: Ipv4Addr, hostname: &str, log: &Path, extra: &str) -> u32 {
    spawn(
        ns,
        ip,
        hostname,
        log,
        &format!("-data-interface {ip} {extra}"),
    )
}

/// The server with `-data-interface vip`: its passive replies advertise the VIP, so the
/// data channels (ports 50000-50100) go through the director too. (Without
/// `-data-interface` the server advertises the address its host name resolves to, the real
/// IP in the lab, not the address the control connection reached.)
pub fn start_data_through_vip(
    ns: &Netns,
    ip: Ipv4Addr,
    vip: Ipv4Addr,
    hostname: &str,
    log: &Path,
) -> u32 {
    spawn(ns, ip, hostname, log, &format!("-data-interface {vip}"))
}

fn spawn(ns: &Netns, ip: Ipv4Addr, hostname: &str, log: &Path, opts: &str) -> u32 {
    ns.write_etc("hosts", &format!("127.0.0.1 localhost\n{ip} {hostname}\n"));
    let pid = ns.spawn_logged(
        &format!(
            "unshare -u sh -c 'hostname {hostname} && exec globus-gridftp-server -aa -anonymous-user nobody \
             -p {PORT} -d error -l {log}.server -port-range 50000,50100 {opts}'",
            log = log.display()
        ),
        log,
    );
    let up = wait_for(Duration::from_secs(10), || {
        ns.run(&format!("ss -Hltn 'sport = :{PORT}' | grep -q LISTEN"))
            .status
            .success()
            .then_some(())
    });
    assert!(
        up.is_some(),
        "globus-gridftp-server did not listen in {}: {}",
        ns.name,
        std::fs::read_to_string(log).unwrap_or_default()
    );
    pid
}

/// A file of `size` pseudo-random bytes readable by the anonymous user; returns its path
/// and SHA-256.
pub fn make_file(dir: &Path, name: &str, size: usize) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = dir.join(name);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sum = sha256(&p);
    (p, sum)
}

pub fn sha256(p: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap();
    assert!(out.status.success(), "sha256sum {}", p.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The globus-url-copy command that fetches `remote` (absolute path) from `host` into `local`.
pub fn url_copy_cmd(host: &str, remote: &Path, local: &Path) -> String {
    format!(
        "globus-url-copy -nodcau ftp://{host}:{PORT}{} file://{}",
        remote.display(),
        local.display()
    )
}

pub fn url_copy(ns: &Netns, host: &str, remote: &Path, local: &Path) -> Output {
    ns.run(&format!("timeout 60 {}", url_copy_cmd(host, remote, local)))
}
