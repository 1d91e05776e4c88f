//! Runs inside the director guest: copies /proc/net/ip_vs to a file on the lab's 9p share
//! each time it changes, so the host can see when a real server leaves or joins rotation.
//!
//! A shell loop (`cat; mv; sleep`) forks three processes per round. Under TCG on one vCPU
//! that load competes with keepalived's own processes and delays what it measures; this
//! binary reads the table with one read(2) per round and writes only on a change
//! (temp file, then rename, so the host never reads half a table).
//!
//! Usage: lvs-lab-ipvs-watch INTERVAL_MS OUT_FILE

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(ms), Some(out)) = (args.get(1).and_then(|s| s.parse::<u64>().ok()), args.get(2))
    else {
        eprintln!("usage: lvs-lab-ipvs-watch INTERVAL_MS OUT_FILE");
        std::process::exit(2);
    };
    let tmp = format!("{out}.tmp");
    let mut last: Option<Vec<u8>> = None;
    loop {
        if let Ok(now) = std::fs::read("/proc/net/ip_vs") {
            if last.as_deref() != Some(&now[..])
                && std::fs::write(&tmp, &now).is_ok()
                && std::fs::rename(&tmp, out).is_ok()
            {
                last = Some(now);
            }
        }
        std::thread::sleep(Duration::from_millis(ms));
    }
}
