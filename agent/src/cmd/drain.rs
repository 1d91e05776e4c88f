//! `lvs-node drain` and `resume`: ask the running agent over its control socket, and with
//! `--wait`, watch the established sessions on the VIP ports until none is left.

use crate::cli::DrainArgs;
use crate::health::sockdiag;
use crate::report::control::{request, Request};
use crate::util::exit::{EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use lvs_shared::config::NodeConfig;
use std::path::Path;
use std::time::{Duration, Instant};

fn load(config: &Path) -> Result<NodeConfig, u8> {
    NodeConfig::load(config).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })
}

pub async fn drain(config: &Path, args: DrainArgs) -> u8 {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = if args.maint {
        Request::Maint {
            reason: args.reason.clone(),
        }
    } else {
        Request::Drain {
            reason: args.reason.clone(),
        }
    };
    match request(&cfg.daemon.control_socket, &req).await {
        Ok(r) if r.ok => {
            let what = if args.maint {
                "maintenance"
            } else {
                "draining"
            };
            eprintln!("node is {what}: directors get weight 0, running transfers continue");
        }
        Ok(r) => {
            eprintln!("error: {}", r.error.unwrap_or_default());
            return EXIT_FAIL;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    }
    if args.wait {
        return wait_idle(&cfg, args.timeout).await;
    }
    EXIT_OK
}

/// Blocks until no established session is left on the VIP service ports, printing
/// progress whenever the count changes (and every 10 s).
async fn wait_idle(cfg: &NodeConfig, timeout: Option<Duration>) -> u8 {
    let eps = sockdiag::vip_endpoints(cfg);
    if eps.is_empty() {
        eprintln!("no [[vip]] ports configured: nothing to wait for");
        return EXIT_OK;
    }
    let start = Instant::now();
    let mut last: Option<u64> = None;
    let mut last_print = Instant::now();
    loop {
        let e2 = eps.clone();
        let n = match tokio::task::spawn_blocking(move || sockdiag::count_established(&e2)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                eprintln!("error: cannot count sessions with sock_diag: {e}");
                return EXIT_FAIL;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_FAIL;
            }
        };
        if n == 0 {
            eprintln!(
                "drained: no established sessions left ({:.1}s)",
                start.elapsed().as_secs_f64()
            );
            return EXIT_OK;
        }
        if last != Some(n) || last_print.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "waiting: {n} established session(s) on the VIP ports ({:.0}s)",
                start.elapsed().as_secs_f64()
            );
            last = Some(n);
            last_print = Instant::now();
        }
        if let Some(t) = timeout {
            if start.elapsed() >= t {
                eprintln!(
                    "error: {n} session(s) still open after {}; the node stays drained",
                    lvs_shared::duration::format(t)
                );
                return EXIT_FAIL;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn resume(config: &Path) -> u8 {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match request(&cfg.daemon.control_socket, &Request::Resume).await {
        Ok(r) if r.ok => {
            eprintln!("node is ready: back in rotation once its checks pass");
            EXIT_OK
        }
        Ok(r) => {
            eprintln!("error: {}", r.error.unwrap_or_default());
            EXIT_FAIL
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAIL
        }
    }
}
