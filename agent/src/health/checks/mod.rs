//! Service checks. Each kind implements [`Check`]; [`spawn`] runs one on its interval with
//! its timeout and records the result in [`Health`]. Reporters never run a check.
//!
//! A check loop that dies (a panic in a probe) must not leave its last "up" in place: the
//! supervisor in [`spawn`] records the failure, logs it and restarts the loop. Results that
//! stop arriving for another reason count as down once stale (see `Health`).

pub mod certificate;
pub mod command;
pub mod dataplane;
pub mod filesystem;
pub mod gridftp;
pub mod http;
pub mod https;
pub mod tcp;
pub mod webdav;
pub mod xrootd;

use crate::health::Health;
use lvs_shared::config::check::{CheckKind, CheckSpec};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// `Ok(detail)` when healthy, `Err(reason)` otherwise. Reasons are short and shown to
/// directors (e.g. `connection refused`).
pub type CheckResult = Result<String, String>;

pub trait Check: Send + Sync + 'static {
    /// One probe. The runner applies the timeout, so implementations need not.
    fn run(&self) -> impl Future<Output = CheckResult> + Send;
}

/// Starts the loop for one configured check.
pub fn spawn(spec: CheckSpec, health: Arc<Health>) -> tokio::task::JoinHandle<()> {
    match spec.kind.clone() {
        CheckKind::Gridftp { target } => start(spec, gridftp::Gridftp { target }, health),
        CheckKind::Tcp { target } => start(spec, tcp::Tcp { target }, health),
        CheckKind::Http { url, expect_status } => {
            match http::Http::new(url, expect_status, spec.timeout) {
                Ok(c) => start(spec, c, health),
                Err(e) => start(spec, Broken(e), health),
            }
        }
        CheckKind::Https {
            target,
            expect_status,
            ca_file,
            client_cert,
            client_key,
            sni,
        } => {
            let timeout = spec.timeout;
            start(
                spec,
                https::Https::new(
                    target,
                    expect_status,
                    ca_file,
                    client_cert,
                    client_key,
                    sni,
                    timeout,
                ),
                health,
            )
        }
        CheckKind::Command { command, user } => {
            start(spec, command::Command::new(command, user), health)
        }
        CheckKind::Filesystem {
            path,
            min_free,
            writable,
        } => start(
            spec,
            filesystem::Filesystem {
                path,
                min_free,
                writable,
                busy: Default::default(),
            },
            health,
        ),
        CheckKind::Certificate {
            cert,
            min_days,
            hostnames,
            tpc_client,
        } => {
            let name = spec.name.clone();
            start(
                spec,
                certificate::Certificate {
                    name,
                    path: cert,
                    min_days,
                    hostnames,
                    tpc_client,
                    health: health.clone(),
                    reading: Default::default(),
                    warned: Default::default(),
                },
                health,
            )
        }
        CheckKind::Xrootd {
            target,
            login,
            stat,
        } => {
            let timeout = spec.timeout;
            start(
                spec,
                xrootd::Xrootd {
                    target,
                    login,
                    stat,
                    timeout,
                },
                health,
            )
        }
        CheckKind::Webdav {
            target,
            expect_status,
            ca_file,
            client_cert,
            client_key,
            sni,
        } => {
            let tls =
                https::TlsClient::new(target, ca_file, client_cert, client_key, sni, spec.timeout);
            let timeout = spec.timeout;
            start(
                spec,
                webdav::Webdav {
                    tls,
                    expect_status,
                    timeout,
                },
                health,
            )
        }
    }
}

/// Aborts the task when dropped, so aborting the supervisor also stops the loop it watches.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A check whose client could not be set up: it reports why on every run.
struct Broken(String);

impl Check for Broken {
    async fn run(&self) -> CheckResult {
        Err(self.0.clone())
    }
}

fn start<C: Check>(spec: CheckSpec, check: C, health: Arc<Health>) -> tokio::task::JoinHandle<()> {
    let check = Arc::new(check);
    tokio::spawn(async move {
        loop {
            let mut probe_loop = AbortOnDrop(tokio::spawn(run_loop(
                spec.clone(),
                check.clone(),
                health.clone(),
            )));
            let why = match (&mut probe_loop.0).await {
                Err(e) if e.is_panic() => {
                    let p = e.into_panic();
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into())
                }
                Err(_) => return, // cancelled: shutting down
                Ok(()) => "ended".into(),
            };
            tracing::error!(check = %spec.name, error = %why, "check task died; restarting it");
            health.record(
                &spec.name,
                Err(format!("check task died ({why}); restarted")),
                std::time::Duration::ZERO,
            );
            // No tight loop if it dies at once every time.
            tokio::time::sleep(spec.interval).await;
        }
    })
}

async fn run_loop<C: Check>(spec: CheckSpec, check: Arc<C>, health: Arc<Health>) {
    let mut tick = tokio::time::interval(spec.interval);
    // A slow probe must not cause a burst of catch-up probes.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t0 = Instant::now();
        let res = match tokio::time::timeout(spec.timeout, check.run()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "timed out after {}",
                lvs_shared::duration::format(spec.timeout)
            )),
        };
        health.record(&spec.name, res, t0.elapsed());
    }
}

/// Resolves `host:port` (names allowed) to the first address.
pub(crate) async fn resolve(target: &str) -> Result<std::net::SocketAddr, String> {
    tokio::net::lookup_host(target)
        .await
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target} resolves to nothing"))
}

/// Connects with the error worded the way admins know it.
pub(crate) async fn connect(target: &str) -> Result<tokio::net::TcpStream, String> {
    let addr = resolve(target).await?;
    tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| io_reason(&e))
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        std::io::ErrorKind::UnexpectedEof => "connection closed early".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_shared::config::daemon::Weight;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// Panics on its second probe, then works again.
    struct Flaky(AtomicU32);

    impl Check for Flaky {
        async fn run(&self) -> CheckResult {
            if self.0.fetch_add(1, Ordering::SeqCst) == 1 {
                panic!("probe bug");
            }
            Ok("fine".into())
        }
    }

    #[tokio::test]
    async fn a_panicking_check_goes_down_and_is_restarted() {
        let h = Health::new(Weight::default(), Default::default());
        h.set_checks(&[("flaky".into(), "command".into(), 1, 1)]);
        let spec = CheckSpec {
            name: "flaky".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(50),
            rise: 1,
            fall: 1,
            kind: CheckKind::Tcp {
                target: "127.0.0.1:1".into(),
            },
        };
        let task = start(spec, Flaky(AtomicU32::new(0)), h.clone());
        let check = |h: &Health| {
            h.snapshot()
                .checks
                .iter()
                .find(|c| c.name == "flaky")
                .cloned()
                .unwrap()
        };
        let mut seen_down = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let c = check(&h);
            if c.up == Some(false) {
                seen_down = Some(c.detail.clone());
                break;
            }
        }
        let detail = seen_down.expect("a panicked check kept its last up");
        assert!(detail.contains("check task died (probe bug)"), "{detail}");
        // Restarted: up again after the next interval.
        let mut back = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if check(&h).up == Some(true) {
                back = true;
                break;
            }
        }
        assert!(back, "the check was not restarted: {:?}", check(&h));
        task.abort();
    }
}
