//! Teardown by prefix: processes by PID, namespaces, /etc/netns files, the work dir; and
//! the signal handler that runs it on Ctrl-C.

use super::*;

pub(crate) fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let o = Command::new("ip").args(["netns", "list"]).output();
    let text = o
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// Kills the given PIDs and every process inside the lab's namespaces (all started by the
/// demo), by PID, then deletes the namespaces, their /etc/netns files and the work dir.
pub(crate) fn teardown(prefix: &str, pids: &[u32]) -> usize {
    use nix::sys::signal::kill;
    use nix::sys::wait::{waitpid, WaitPidFlag};
    use nix::unistd::Pid;
    let nss = netns_with_prefix(prefix);
    let mut all: Vec<i32> = pids.iter().map(|&p| p as i32).collect();
    for ns in &nss {
        if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
            all.extend(
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    all.sort();
    all.dedup();
    let alive = |p: i32| {
        // Reap our own children; others simply vanish.
        let _ = waitpid(Pid::from_raw(p), Some(WaitPidFlag::WNOHANG));
        kill(Pid::from_raw(p), None).is_ok()
    };
    for &p in &all {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let _ = wait_for(Duration::from_secs(2), || {
        all.iter().all(|&p| !alive(p)).then_some(())
    });
    for &p in &all {
        if alive(p) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(p), None);
        }
    }
    for ns in &nss {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
    }
    let _ = std::fs::remove_dir_all(workdir_of(prefix));
    // The real director guest's files (qemu ran in the bridge namespace: killed above).
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{prefix}-vm")));
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{prefix}-dir.nft")));
    nss.len()
}

/// SIGINT/SIGTERM: tear down from whatever state the demo is in, then exit 130.
pub(crate) fn install_signal_handler() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    // Blocked in every thread (inherited); std resets the mask in child processes.
    set.thread_block().expect("block signals");
    std::thread::spawn(move || {
        let sig = set.wait().unwrap_or(Signal::SIGTERM);
        println!("\n{sig} received: tearing the lab down");
        let _l = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prefix) = PREFIX.get() {
            let pids = PIDS.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let n = teardown(prefix, &pids);
            println!("removed {n} namespaces ({prefix}*) and the processes the demo started");
        }
        let _ = std::io::stdout().flush();
        std::process::exit(130);
    });
}

// ---------------------------------------------------------------------------------------
