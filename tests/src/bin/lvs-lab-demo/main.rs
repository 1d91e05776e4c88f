//! The one-command LVS-DR lab demo (`tests/demo.sh`): a client, a director (nftables DR
//! emulation driven by a real HAProxy reading the nodes' agent-checks) and three real
//! servers running real globus-gridftp-server and `lvs-node run`, all in network
//! namespaces. It walks through the story step by step, prints a verdict per step, exits
//! non-zero if one fails, and tears everything down on exit, on error and on Ctrl-C.
//!
//! ```text
//! lvs-lab-demo [--keep] [--prefix P]   run the demo (--keep: leave the lab up)
//! lvs-lab-demo --teardown P            remove a lab left by --keep
//! ```

use lab::dr::{Host, VIP};
use lab::haproxy::{Haproxy, Server};
use lab::{gridftp, wait_for, DrLab, LabOpts, Netns};
use nix::sys::signal::{SigSet, Signal};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

mod director;
mod pool;
mod report;
mod steps;
mod teardown;

use director::*;
use pool::*;
use report::*;
use steps::*;
use teardown::*;

const HTTP_PORT: u16 = 8080;
const AGENT_PORT: u16 = 8081;
/// ARP suppression per node: one of each method, so the demo shows all three.
const ARP_METHODS: [&str; 3] = ["sysctl", "nftables", "arptables"];

/// Held while namespaces or processes are being created, so the signal handler never
/// tears down half of a creation.
static LAB_LOCK: Mutex<()> = Mutex::new(());
/// Processes the demo started (PIDs), killed by PID on a signal.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static PREFIX: OnceLock<String> = OnceLock::new();

fn track(pid: u32) -> u32 {
    PIDS.lock().unwrap().push(pid);
    pid
}

fn workdir_of(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-demo"))
}

fn explore_help(d: &Demo, prefix: &str, exe: &str) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let p = prefix;
    let sock = d.hap.socket.display();
    let cfg1 = d.nodes[0].cfg.display();
    let obs = d.lab.observer_role();
    let _ = writeln!(o, "\nThe lab is up (--keep). Explore it:");
    let _ = writeln!(o, "  ip netns list | grep {p}");
    let _ = writeln!(o, "  ip netns exec {p}rs1 {} -c {cfg1} status", lvs_node());
    let _ = writeln!(
        o,
        "  ip netns exec {p}{obs} curl -s http://{}:{HTTP_PORT}/health    # also /status, /metrics",
        d.nodes[0].host.ip
    );
    let _ = writeln!(
        o,
        "  ip netns exec {p}{obs} socat -t 2 - TCP:{}:{AGENT_PORT}        # the agent-check line",
        d.nodes[0].host.ip
    );
    let _ = writeln!(
        o,
        "  echo 'show stat' | ip netns exec {p}{obs} socat - UNIX-CONNECT:{sock}"
    );
    match d.lab.ipvs() {
        Some(dir) => {
            let io = dir.vm.io_dir().display();
            let _ = writeln!(
                o,
                "  echo 'ipvsadm -Ln --stats' > {io}/cmd/x.tmp && mv {io}/cmd/x.tmp {io}/cmd/x.sh; \
                 sleep 2; cat {io}/cmd/x.out   # a command in the director guest"
            );
            let _ = writeln!(o, "  cat {io}/keepalived.log     # keepalived in the guest");
            let _ = writeln!(
                o,
                "  cat {}     # the guest's serial console",
                dir.vm.console_path().display()
            );
        }
        None => {
            let _ = writeln!(
                o,
                "  ip netns exec {p}dir nft list table netdev lvsdr     # the EMULATED DR forwarding table"
            );
        }
    }
    let _ = writeln!(
        o,
        "  ip netns exec {p}cl globus-url-copy -nodcau ftp://{VIP}:2811{} file:///tmp/x.bin",
        d.data.join("file01.bin").display()
    );
    let _ = writeln!(o, "  ip netns exec {p}cl arping -c 2 -I eth0 {VIP}");
    let _ = writeln!(
        o,
        "  ip netns exec {p}rs1 {} -c {cfg1} drain --wait   # then: resume",
        lvs_node()
    );
    let _ = writeln!(o, "  logs and configs: {}", d.work.display());
    if !d.lab.is_real() {
        let _ = writeln!(
            o,
            "Note (nftables EMULATION): the demo's controller has exited, so the nft DR table keeps"
        );
        let _ = writeln!(
            o,
            "its last rotation ({}); HAProxy and the agents keep running.",
            names(&d.rotation_now())
        );
    }
    let _ = writeln!(o, "\nTear it down afterwards with:");
    let _ = writeln!(
        o,
        "  tests/demo.sh --teardown {p}        (or: {exe} --teardown {p})"
    );
    let _ = writeln!(o, "or by hand:");
    let _ = writeln!(o,
        "  for ns in $(ip netns list | awk '/^{p}/{{print $1}}'); do ip netns pids $ns | xargs -r kill; ip netns del $ns; rm -rf /etc/netns/$ns; done"
    );
    let _ = writeln!(o, "  rm -rf {} /tmp/{p}-vm", d.work.display());
    o
}

fn usage() -> ExitCode {
    eprintln!("usage: lvs-lab-demo [--keep] [--prefix P] | --teardown P");
    ExitCode::from(2)
}

fn valid_prefix(p: &str) -> bool {
    !p.is_empty() && p.len() <= 10 && p.chars().all(|c| c.is_ascii_alphanumeric())
}

fn main() -> ExitCode {
    let mut keep = false;
    let mut prefix = format!("lvd{}", std::process::id());
    let mut teardown_only = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keep" => keep = true,
            "--prefix" => match args.next() {
                Some(p) => prefix = p,
                None => return usage(),
            },
            "--teardown" => match args.next() {
                Some(p) => teardown_only = Some(p),
                None => return usage(),
            },
            "-h" | "--help" => {
                println!("usage: lvs-lab-demo [--keep] [--prefix P] | --teardown P");
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    lab::require_root();
    if let Some(p) = teardown_only {
        if !valid_prefix(&p) {
            eprintln!("--teardown: a lab prefix is 1-10 letters or digits, e.g. lvd12345");
            return ExitCode::from(2);
        }
        let n = teardown(&p, &[]);
        println!(
            "removed {n} namespaces ({p}*), their processes and {}",
            workdir_of(&p).display()
        );
        return ExitCode::SUCCESS;
    }
    if !valid_prefix(&prefix) {
        eprintln!("--prefix: 1-10 letters or digits");
        return ExitCode::from(2);
    }
    if !netns_with_prefix(&prefix).is_empty() {
        eprintln!("namespaces named {prefix}* exist already: `--teardown {prefix}` first");
        return ExitCode::from(2);
    }
    install_signal_handler();
    PREFIX.set(prefix.clone()).unwrap();
    let started = Instant::now();
    println!("LVS-DR GridFTP pool demo: lab {prefix}");
    let work = workdir_of(&prefix);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");

    let lab = {
        let _l = LAB_LOCK.lock().unwrap();
        std::panic::catch_unwind(|| Director::build(&prefix))
    };
    let Ok(lab) = lab else {
        teardown(&prefix, &[]);
        return ExitCode::FAILURE;
    };
    let mut report = Report {
        short: work.display().to_string(),
        steps: Vec::new(),
        ok: true,
    };
    let rotation = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "lvs-lab-demo".into());
    let mut kept: Option<String> = None;
    std::thread::scope(|s| {
        let r = &mut report;
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut d = match setup(r, &lab, &work, &rotation) {
                Ok(d) => d,
                Err(e) => {
                    r.check(false, &format!("setup: {e:#}"));
                    return None;
                }
            };
            r.end_step();
            if r.failed() {
                return Some(d);
            }
            let hap = &d.hap;
            let (labr, rot, stopr) = (&lab, &rotation, &stop);
            let n = d.nodes.len();
            match labr {
                Director::Ipvs(l) => {
                    let (dir, reals) = (&l.director, &l.reals[..]);
                    s.spawn(move || ipvs_poller(dir, reals, rot, stopr));
                }
                Director::Emulation(l) => {
                    // The controller thread outlives `d`'s borrow scope: give it its own
                    // handle on the same HAProxy (its stats socket).
                    let hap2 = Haproxy {
                        pid: hap.pid,
                        socket: hap.socket.clone(),
                    };
                    s.spawn(move || controller(l, &hap2, n, rot, stopr));
                }
            }
            let _ = d.wait_rotation(|_| true, Duration::from_secs(2));
            step_arp(r, &d);
            step_spread(r, &mut d);
            step_kill(r, &mut d);
            step_drain(r, &mut d);
            Some(d)
        }));
        stop.store(true, Ordering::SeqCst);
        match res {
            Ok(Some(d)) => {
                if keep {
                    kept = Some(explore_help(&d, &prefix, &exe));
                }
            }
            Ok(None) => {}
            Err(_) => {
                r.check(false, "the demo hit an unexpected error (see above)");
            }
        }
    });

    println!("\n━━━ Summary ━━━");
    for (i, (t, ok)) in report.steps.iter().enumerate() {
        println!("  {} {}. {t}", if *ok { "✔" } else { "✘" }, i + 1);
    }
    let failed = report.failed() || report.steps.is_empty();
    println!(
        "  {} in {:.1} s",
        if failed {
            "✘ FAILED"
        } else {
            "✔ all steps passed"
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(help) = kept {
        print!("{help}");
        std::mem::forget(lab);
    } else {
        let _l = LAB_LOCK.lock().unwrap();
        drop(lab);
        teardown(&prefix, &[]);
        println!("  lab {prefix} torn down (namespaces deleted, processes stopped)");
    }
    let _ = std::io::stdout().flush();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
