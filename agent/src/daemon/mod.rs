//! `lvs-node run`: converge, then keep the node converged (rtnetlink events + a short
//! recheck), run the checks, serve the reports and the control socket, reload on SIGHUP,
//! and on SIGTERM leave the VIPs in place (or run `down` with `on_stop = "down"`).
//!
//! A reload is all or nothing: every new listener is bound (next to the old ones) before
//! anything changes; if one cannot be bound, the whole running config stays in force and the
//! refusal shows in the log, `/status` (`reload_error`) and `/metrics`.
//! The data plane loop (`dataplane_loop`) runs on a thread of its own, because it runs
//! external tools (`nft`, `arptables`) that block: a hung tool must never stall `/health`,
//! the agent-check, the control socket or the watchdog. BFD, the edge (listeners on the VIP)
//! and the pool run on planes of their own (`planes`), so nothing a client or a peer sends
//! is handled on the director plane's thread.

mod apply;
mod dataplane_loop;
pub mod planes;

use crate::health::Health;
use crate::report;
use apply::{Listening, ReportKey, Task};
use dataplane_loop::{dataplane_stale, DataplaneLoop, DataplaneThread};
use lvs_shared::config::check::CheckSpec;
use lvs_shared::config::daemon::OnStop;
use lvs_shared::config::NodeConfig;
use planes::Planes;
use rtnetlink::MulticastGroup;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

pub async fn run(config: &Path) -> u8 {
    let cfg = match NodeConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::util::exit::EXIT_USAGE;
        }
    };
    if let Err(e) = check_tls(&cfg) {
        eprintln!("error: {e}");
        return crate::util::exit::EXIT_USAGE;
    }
    // Signal handlers first: once a listener answers, a SIGTERM must already mean a clean
    // stop (on_stop), never the default kill.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return crate::util::exit::EXIT_FAIL;
        }
    };
    // A second agent on this host must stop here, before it converges or binds anything.
    if let Err(e) = crate::report::control::clear_stale(&cfg.daemon.control_socket) {
        eprintln!("error: daemon.control_socket: {e}");
        return crate::util::exit::EXIT_FAIL;
    }
    let mut signals = signals;
    match Daemon::start(cfg, &mut signals).await {
        Ok(mut d) => d.main_loop(signals).await,
        Err(StartError::NotConverged(e)) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            crate::util::exit::EXIT_NOT_CONVERGED
        }
        Err(StartError::Stopped(why)) => {
            tracing::info!("{why} before the first convergence: stopping");
            crate::util::exit::EXIT_OK
        }
        Err(StartError::Other(e)) => {
            eprintln!("error: {e}");
            crate::util::exit::EXIT_FAIL
        }
    }
}

/// What the config's TLS files need beyond their parse: each key belongs to its
/// certificate, the CA files load. Errors name the key and the fix.
fn check_tls(cfg: &NodeConfig) -> Result<(), lvs_shared::error::ConfigError> {
    crate::report::tls::server(&cfg.file, &cfg.daemon.report)?;
    let p = &cfg.daemon.pool;
    if let Some(c) = &p.client {
        crate::report::tls::check_pair(&cfg.file, ("pool.cert", &c.cert), ("pool.key", &c.key))?;
    }
    crate::pool::client(p.timeout, p.ca.as_deref(), p.client.as_ref(), &p.peers).map_err(|e| {
        lvs_shared::error::ConfigError::new(
            &cfg.file,
            "pool.ca",
            e,
            "point ca at the PEM bundle or directory of the CA(s) of the peers' host certificates",
        )
    })?;
    Ok(())
}

/// Why `run` stopped before sending READY=1.
enum StartError {
    /// The data plane did not converge within `[daemon] start_timeout`.
    NotConverged(String),
    /// SIGTERM or SIGINT while the first convergence was still being retried.
    Stopped(&'static str),
    Other(String),
}

impl From<String> for StartError {
    fn from(e: String) -> StartError {
        StartError::Other(e)
    }
}

struct Daemon {
    cfg: Arc<NodeConfig>,
    health: Arc<Health>,
    checks: HashMap<String, Task<CheckSpec>>,
    /// Reads `[report] macaroon_secret` for its fingerprint in `/status`.
    macaroon: Option<Task<PathBuf>>,
    http: Option<Listening<ReportKey>>,
    /// `[report] https`: the same endpoint over TLS, on the pool plane.
    https: Option<Listening<apply::HttpsKey>>,
    agent: Option<Listening<ReportKey>>,
    control: Option<Task<(PathBuf, PathBuf)>>,
    /// The HTTP-01 responder for `[acme]`: webroot and listen addresses.
    acme: Option<Listening<(PathBuf, Vec<std::net::SocketAddr>)>>,
    /// The `[[redirect]]` listeners, restarted together when any of them changes.
    redirect: Vec<Task<Vec<lvs_shared::config::redirect::Redirect>>>,
    cfg_tx: watch::Sender<Arc<NodeConfig>>,
    /// The pool poller (`[pool] peers`), and the channel its consumers read; the channel
    /// outlives poller restarts on reload.
    pool: Option<Task<lvs_shared::config::daemon::Pool>>,
    pool_tx: watch::Sender<Arc<crate::pool::PoolView>>,
    /// The BFD speaker (`[bfd]`), one session per director.
    bfd: Option<crate::report::bfd::Speaker>,
    /// The last hour of every node, recorded by the poller, shown by `/pool`.
    pool_history: crate::pool::history::SharedHistory,
    /// The BFD, edge and pool planes, each on threads of its own (see `planes`).
    planes: Planes,
    /// `/metrics`: every component's metrics, registered once at start.
    metrics: Arc<report::metrics::Metrics>,
    /// The redirect listeners' answer counts, which outlive their restarts.
    redirect_counts: crate::edge::redirect::Counts,
    /// None once stopping: no repair may race the final `down`.
    dataplane: Option<DataplaneThread>,
    /// This node's depool state as last logged (see `depool`).
    depool_logged: Depool,
    _load: Task<()>,
}

impl Daemon {
    async fn start(cfg: NodeConfig, signals: &mut Signals) -> Result<Daemon, StartError> {
        let cfg = Arc::new(cfg);
        let admin = crate::report::control::load_admin(&cfg.state_dir);
        if admin.admin != crate::health::Admin::Ready {
            tracing::warn!(admin = admin.admin.as_str(), reason = ?admin.reason, "starting with a persisted admin state; `lvs-node resume` to put the node back");
        }
        let health = Health::new(cfg.daemon.weight, admin);

        let (conn, handle, events) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])
        .map_err(|e| format!("cannot open rtnetlink: {e}"))?;
        tokio::spawn(conn);

        // First convergence before anything reports, so the first answer is truthful, and
        // before READY=1, so nothing ordered after the unit starts without its VIPs.
        let mut dp = DataplaneLoop {
            cfg: cfg.clone(),
            handle,
            health: health.clone(),
            last_error: None,
        };
        first_convergence(&mut dp, signals).await?;

        let (cfg_tx, cfg_rx) = watch::channel(cfg.clone());
        health.set_dataplane_stale(dataplane_stale(&cfg));
        let dataplane = DataplaneThread::spawn(dp, events, cfg_rx.clone())
            .map_err(|e| format!("cannot start the data plane thread: {e}"))?;
        let load = Task {
            key: (),
            handle: tokio::spawn(load_loop(health.clone(), cfg_rx)),
        };
        let mut metrics = report::metrics::Metrics::default();
        metrics
            .public()
            .register_collector(Box::new(crate::health::metrics::HealthCollector(
                health.clone(),
            )));
        metrics
            .directors()
            .register_collector(Box::new(report::bfd::BfdCollector));
        let redirect_counts = crate::edge::redirect::Counts::register(metrics.directors());
        let pool_tx = watch::channel(Arc::new(crate::pool::PoolView::empty())).0;
        metrics
            .public()
            .register_collector(Box::new(crate::pool::metrics::PoolCounts(
                pool_tx.subscribe(),
            )));
        metrics
            .directors()
            .register_collector(Box::new(crate::pool::metrics::PoolPeers(
                pool_tx.subscribe(),
            )));
        let planes =
            Planes::start().map_err(|e| format!("cannot start the agent's threads: {e}"))?;
        let mut d = Daemon {
            planes,
            metrics: Arc::new(metrics),
            redirect_counts,
            cfg: cfg.clone(),
            health,
            checks: HashMap::new(),
            macaroon: None,
            http: None,
            https: None,
            agent: None,
            control: None,
            acme: None,
            redirect: Vec::new(),
            cfg_tx,
            pool: None,
            pool_tx,
            bfd: None,
            pool_history: crate::pool::history::History::shared(),
            dataplane: Some(dataplane),
            depool_logged: Depool::Clear,
            _load: load,
        };
        d.apply(&cfg).await?;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(
            checks = d.checks.len(),
            http = ?cfg.daemon.report.http,
            agent_check = ?cfg.daemon.report.agent_check,
            "agent running"
        );
        Ok(d)
    }

    async fn main_loop(&mut self, signals: Signals) -> u8 {
        let Signals {
            mut hup,
            mut term,
            mut int,
        } = signals;
        // The watchdog is fed from this loop, so a wedged loop is noticed by systemd.
        let wd = sd_notify::watchdog_enabled().map(|d| d / 2);
        let mut wd_tick = tokio::time::interval(wd.unwrap_or(Duration::from_secs(3600)));
        // Staleness is re-evaluated even when no result arrives.
        let mut refresh = tokio::time::interval(Duration::from_secs(1));
        let hang_after = injected_hang();
        let hang = tokio::time::sleep(hang_after.unwrap_or(Duration::from_secs(3600)));
        tokio::pin!(hang);
        loop {
            tokio::select! {
                _ = &mut hang, if hang_after.is_some() => {
                    tracing::warn!("injected fault: the main loop hangs");
                    std::future::pending::<()>().await;
                }
                // The hold first: a grace that ends on this tick meets the hold already
                // decided from the latest view, so a held node never shows down between.
                _ = refresh.tick() => {
                    self.depool();
                    self.health.refresh();
                }
                _ = hup.recv() => self.reload().await,
                _ = term.recv() => return self.stop("SIGTERM").await,
                _ = int.recv() => return self.stop("SIGINT").await,
                _ = wd_tick.tick(), if wd.is_some() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
    }

    /// Grants or withdraws the hold of `[pool] depool_threshold` from the pool poller's
    /// latest view (`pool::depool`), and logs when this node's depool state changes.
    /// Runs every second, so a view that goes stale withdraws the hold within a second of
    /// `[pool] max_age`. The log lines carry `depool=` (held, pending, out, clear) for
    /// journal searches; the metrics `lvs_realserver_held` and `_shared_failure` say the
    /// same to the alert rules.
    fn depool(&mut self) {
        let view = self.pool_tx.borrow().clone();
        let d = crate::pool::depool::decide(
            &view,
            self.cfg.daemon.pool.depool_threshold,
            std::time::SystemTime::now(),
        );
        self.health.set_hold(d.hold);
        let snap = self.health.snapshot();
        let now = match (snap.shared_failure, snap.held, snap.hold_pending) {
            (false, _, _) => Depool::Clear,
            (true, true, true) => Depool::Pending,
            (true, true, false) => Depool::Held,
            (true, false, _) => Depool::Out,
        };
        if now == self.depool_logged {
            return;
        }
        self.depool_logged = now;
        let reason = snap.reason.clone().unwrap_or_default();
        match now {
            Depool::Held => tracing::warn!(
                depool = "held", reason = %reason, members = d.members, seen = d.seen, healthy = d.healthy, need = d.need,
                "held in: only shared checks fail, and depooling this node would leave fewer nodes serving than [pool] depool_threshold; {}", d.why
            ),
            Depool::Pending => tracing::warn!(
                depool = "pending", reason = %reason,
                "shared check failing: the node stays in until the pool view shows whether the peers fail too"
            ),
            Depool::Out => tracing::warn!(
                depool = "out", reason = %reason, members = d.members, seen = d.seen, healthy = d.healthy, need = d.need,
                "shared check failing, node leaves the pool: {}", d.why
            ),
            Depool::Clear => tracing::info!(
                depool = "clear",
                "no shared failure: the depool threshold holds nothing"
            ),
        }
    }

    async fn reload(&mut self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
        let file = self.cfg.file.clone();
        match NodeConfig::load(&file) {
            Err(e) => {
                tracing::error!("reload refused, keeping the running config: {e}");
                self.health.set_reload_error(Some(e.to_string()));
            }
            Ok(new) => {
                let new = Arc::new(new);
                match self.apply(&new).await {
                    Err(e) => {
                        tracing::error!("reload refused, keeping the running config: {e}");
                        self.health.set_reload_error(Some(e));
                    }
                    Ok(()) => {
                        self.cfg = new.clone();
                        // The data plane loop converges to the new config at once.
                        self.cfg_tx.send_replace(new);
                        self.health.set_reload_error(None);
                        tracing::info!(file = %file.display(), "config reloaded");
                    }
                }
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    }

    async fn stop(&mut self, why: &str) -> u8 {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        // The directors hear first (AdminDown), before anything is torn down.
        if let Some(b) = self.bfd.take() {
            tracing::info!("{why}: BFD sessions set AdminDown");
            b.stop().await;
        }
        // Stop the repair loop before anything is torn down. Only `down` must wait for it
        // (no repair may race it; a tool it runs is bounded by its timeout, so the wait is
        // too); otherwise the agent exits at once even while a tool hangs.
        if let Some(dp) = self.dataplane.take() {
            if self.cfg.daemon.on_stop == OnStop::Down && self.cfg.daemon.manage_dataplane {
                dp.stop().await;
            }
        }
        self.checks.clear();
        self.http = None;
        self.agent = None;
        self.control = None;
        self.acme = None;
        self.redirect.clear();
        self.pool = None;
        let _ = std::fs::remove_file(&self.cfg.daemon.control_socket);
        if self.cfg.daemon.on_stop == OnStop::Down && self.cfg.daemon.manage_dataplane {
            tracing::info!("{why}: on_stop = \"down\": removing the VIPs");
            if let Err(e) = crate::dataplane::teardown(&self.cfg).await {
                tracing::error!("down failed: {e}");
                return crate::util::exit::EXIT_FAIL;
            }
        } else {
            tracing::info!("{why}: leaving the VIPs in place (on_stop = \"keep\")");
        }
        crate::util::exit::EXIT_OK
    }
}

/// The lab's hook `LVS_NODE_HANG_LOOP_AFTER_MS=N`: the main loop stops N ms after it
/// starts, as a wedged loop would (the watchdog pings must stop). Only in builds with the
/// `fault-injection` feature (tests/run.sh); release builds never read it.
#[cfg(feature = "fault-injection")]
fn injected_hang() -> Option<Duration> {
    std::env::var("LVS_NODE_HANG_LOOP_AFTER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

#[cfg(not(feature = "fault-injection"))]
fn injected_hang() -> Option<Duration> {
    None
}

/// The pause between two attempts at the first convergence.
const START_RETRY: Duration = Duration::from_secs(1);

/// Converges the data plane at start, retrying (a NIC that is not up yet, a tool that is
/// still being installed) until `[daemon] start_timeout`. READY=1 waits for it: a unit
/// ordered after lvs-node must never start on a node without its VIPs or ARP suppression.
/// With `manage_dataplane = false` there is nothing to converge.
async fn first_convergence(
    dp: &mut DataplaneLoop,
    signals: &mut Signals,
) -> Result<(), StartError> {
    let limit = dp.cfg.daemon.start_timeout;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let err = match dp.repair_and_observe("startup", Instant::now()).await {
            None => return Ok(()),
            Some(e) => e,
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(StartError::NotConverged(format!(
                "the data plane did not converge within [daemon] start_timeout ({}): {err}; \
                 READY=1 not sent. Fix the cause (`lvs-node up --dry-run` shows the plan), or \
                 raise start_timeout in {} if the host needs longer to bring its NIC up",
                lvs_shared::duration::format(limit),
                dp.cfg.file.display()
            )));
        }
        let wait = tokio::time::sleep_until((now + START_RETRY).min(deadline));
        tokio::select! {
            _ = wait => {}
            _ = signals.term.recv() => return Err(StartError::Stopped("SIGTERM")),
            _ = signals.int.recv() => return Err(StartError::Stopped("SIGINT")),
        }
    }
}

/// How often the sessions are counted when they do not weigh (`[weight]
/// sessions_per_core = 0`): they are then only shown (`/status`, `/metrics`, the pool
/// page's history). A sock_diag dump walks the kernel's whole established-socket hash
/// table (262,144 buckets on a 24 GiB host, two walks with IPv4 and IPv6 VIPs), which
/// costs the same on an idle node as on a busy one: about 0.1 % of a core at one dump
/// every 5 s in the 50-node benchmark (docs/benchmarks.md, "Site scale").
const SESSIONS_SHOWN_EVERY: Duration = Duration::from_secs(10);

/// Refreshes the load inputs of the weight: established VIP sessions (sock_diag) every
/// second while they weigh, else every [`SESSIONS_SHOWN_EVERY`], and the 1-minute load
/// average every second.
async fn load_loop(health: Arc<Health>, cfg_rx: watch::Receiver<Arc<NodeConfig>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut counted: Option<(tokio::time::Instant, u64)> = None;
    loop {
        tick.tick().await;
        let (eps, weigh) = {
            let cfg = cfg_rx.borrow();
            (
                crate::health::sockdiag::vip_endpoints(&cfg),
                cfg.daemon.weight.sessions_per_core > 0.0,
            )
        };
        let now = tokio::time::Instant::now();
        let sessions = match counted {
            Some((at, n)) if !weigh && now.duration_since(at) < SESSIONS_SHOWN_EVERY => n,
            _ => {
                let n = tokio::task::spawn_blocking(move || {
                    crate::health::sockdiag::count_established(&eps)
                })
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or(0);
                counted = Some((now, n));
                n
            }
        };
        let load1 = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        health.set_load(sessions, load1);
    }
}

/// This node's place under `[pool] depool_threshold`, for the log lines of `depool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depool {
    /// No shared failure.
    Clear,
    /// A shared failure younger than the hold grace: still in.
    Pending,
    /// Held in by the pool view.
    Held,
    /// A shared failure, and enough others serve: out.
    Out,
}
