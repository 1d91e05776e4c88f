//! Service checks. Each kind implements [`Check`]; [`spawn`] runs one on its interval with
//! its timeout and records the result in [`Health`]. Reporters never run a check.

pub mod certificate;
pub mod command;
pub mod dataplane;
pub mod filesystem;
pub mod gridftp;
pub mod http;
pub mod https;
pub mod tcp;
pub mod xrootd;

use crate::health::Health;
use lvs_shared::config::daemon::{CheckKind, CheckSpec};
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
        CheckKind::Command { command } => start(spec, command::Command { argv: command }, health),
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
        } => start(
            spec,
            certificate::Certificate {
                path: cert,
                min_days,
                hostnames,
            },
            health,
        ),
        CheckKind::Xrootd { target } => start(spec, xrootd::Xrootd { target }, health),
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
    tokio::spawn(async move {
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
    })
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
