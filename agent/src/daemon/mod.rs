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

mod dataplane_loop;
pub mod planes;

use crate::health::checks;
use crate::health::Health;
use crate::report;
use crate::util::gate::{self, Gate, Limits};
use dataplane_loop::{dataplane_stale, DataplaneLoop, DataplaneThread};
use lvs_shared::config::check::CheckSpec;
use lvs_shared::config::daemon::OnStop;
use lvs_shared::config::NodeConfig;
use planes::Planes;
use rtnetlink::MulticastGroup;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// One listener task and what it was started with, so a reload restarts only what changed.
struct Task<K> {
    key: K,
    handle: JoinHandle<()>,
}

/// A TCP listener task with its bound sockets, which a reload hands on when the address
/// stays the same (the address cannot be bound twice).
struct Listening<K> {
    task: Task<K>,
    socks: Vec<Arc<TcpListener>>,
}

/// What a reload does with one TCP listener, decided before anything changes.
enum Next<K> {
    Keep,
    Stop,
    Start(K, Vec<Arc<TcpListener>>),
}

/// Binds what `want` needs that is not bound yet, next to the running listener. Fails
/// without changing anything.
fn next_listener<K: PartialEq>(
    cur: Option<&Listening<K>>,
    want: Option<K>,
    addrs: &[std::net::SocketAddr],
    what: &str,
    bind: &dyn Fn(std::net::SocketAddr) -> std::io::Result<TcpListener>,
) -> Result<Next<K>, String> {
    if cur.map(|c| &c.task.key) == want.as_ref() {
        return Ok(Next::Keep);
    }
    let Some(k) = want else {
        return Ok(Next::Stop);
    };
    let mut socks = Vec::new();
    for a in addrs {
        let old = cur.and_then(|c| {
            c.socks
                .iter()
                .find(|s| s.local_addr().ok().as_ref() == Some(a))
        });
        match old {
            Some(s) => socks.push(s.clone()),
            None => socks.push(Arc::new(
                bind(*a).map_err(|e| format!("cannot listen on {what} {a}: {e}"))?,
            )),
        }
    }
    Ok(Next::Start(k, socks))
}

type ReportKey = (Vec<std::net::SocketAddr>, Limits);

impl<K> Drop for Task<K> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

struct Daemon {
    cfg: Arc<NodeConfig>,
    health: Arc<Health>,
    checks: HashMap<String, Task<CheckSpec>>,
    http: Option<Listening<ReportKey>>,
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
        let planes =
            Planes::start().map_err(|e| format!("cannot start the agent's threads: {e}"))?;
        let mut d = Daemon {
            planes,
            metrics: Arc::new(metrics),
            redirect_counts,
            cfg: cfg.clone(),
            health,
            checks: HashMap::new(),
            http: None,
            agent: None,
            control: None,
            acme: None,
            redirect: Vec::new(),
            cfg_tx,
            pool: None,
            pool_tx: watch::channel(Arc::new(crate::pool::PoolView::empty())).0,
            bfd: None,
            pool_history: crate::pool::history::History::shared(),
            dataplane: Some(dataplane),
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

    /// Makes the running tasks match `cfg`: checks, listeners, control socket. Used at
    /// start and on SIGHUP; unchanged pieces keep running (and keep their check state).
    /// Everything that can fail (binding) happens first; on failure nothing has changed.
    async fn apply(&mut self, cfg: &NodeConfig) -> Result<(), String> {
        let d = &cfg.daemon;
        let rep = &d.report;

        // Phase 1: bind every new socket next to the running ones.
        // One endpoint may listen on the IPv4 and the IPv6 address; one gate (the same caps
        // and per-source counts) covers both sockets.
        let key = |addrs: Vec<std::net::SocketAddr>| {
            (!addrs.is_empty()).then(|| {
                (
                    addrs,
                    Limits {
                        allow: rep.allow.clone(),
                        public: rep.public_health,
                        max: rep.max_connections,
                        per_source: rep.max_per_source,
                    },
                )
            })
        };
        let addrs = |a: Option<std::net::SocketAddr>, b: Option<std::net::SocketAddr>| {
            a.into_iter().chain(b).collect::<Vec<_>>()
        };
        let http_addrs = addrs(rep.http, rep.http6);
        let http = next_listener(
            self.http.as_ref(),
            key(http_addrs.clone()),
            &http_addrs,
            "report.http",
            &gate::bind,
        )?;
        let agent_addrs = addrs(rep.agent_check, rep.agent_check6);
        let agent = next_listener(
            self.agent.as_ref(),
            key(agent_addrs.clone()),
            &agent_addrs,
            "report.agent_check",
            &gate::bind,
        )?;
        let acme_key = match &cfg.acme {
            Some(a) => {
                let vips: Vec<IpAddr> = cfg.vips.iter().map(|v| v.address).collect();
                let real = crate::dataplane::real_ip(cfg).await;
                Some((a.webroot.clone(), a.listeners(&vips, real)))
            }
            None => None,
        };
        let acme_key = match acme_key {
            Some(k) if k.1.is_empty() => {
                tracing::error!("ACME HTTP-01 responder not started: no listen address (is real_ip resolvable?)");
                None
            }
            k => k,
        };
        let acme_addrs = acme_key.as_ref().map(|k| k.1.clone()).unwrap_or_default();
        // The responder faces every client on the VIP: its sockets belong to the edge.
        let edge = &self.planes.edge;
        let acme = next_listener(self.acme.as_ref(), acme_key, &acme_addrs, "acme", &|a| {
            edge.enter(|| gate::bind(a))
        })?;
        let ck = (d.control_socket.clone(), cfg.state_dir.clone());
        let control = if self.control.as_ref().map(|t| &t.key) == Some(&ck) {
            None
        } else if self.control.as_ref().map(|t| &t.key.0) == Some(&ck.0) {
            // Same path, new state_dir: the socket is rebound in place below.
            Some(None)
        } else {
            Some(Some(crate::report::control::bind(&ck.0).map_err(|e| {
                format!("cannot create the control socket {}: {e}", ck.0.display())
            })?))
        };

        let redirect = if self.redirect.first().map(|t| &t.key) == Some(&cfg.redirects)
            || (self.redirect.is_empty() && cfg.redirects.is_empty())
        {
            None
        } else {
            let view = Arc::new(crate::edge::redirect::pool_view::FromPool(
                self.pool_tx.subscribe(),
            ));
            Some(crate::edge::redirect::prepare(
                &cfg.redirects,
                view,
                &self.redirect_counts,
            )?)
        };

        // The BFD receive socket is bound anew only when the source address changes.
        let bfd_bound = match (&self.bfd, &cfg.bfd) {
            (Some(s), Some(b)) if s.key.source == b.source => None,
            (_, Some(b)) => Some(self.planes.bfd.enter(|| crate::report::bfd::bind(b))?),
            _ => None,
        };

        // Phase 2: nothing below fails; the new config takes over.
        self.health.set_weight(d.weight);
        self.health.set_checks_stale(
            &d.checks
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.kind.as_str().to_string(),
                        c.rise,
                        c.fall,
                        crate::health::stale_bound(c.interval, c.timeout),
                    )
                })
                .collect::<Vec<_>>(),
        );
        self.health.set_dataplane_stale(dataplane_stale(cfg));
        self.checks.retain(|name, t| {
            let keep = d.checks.iter().any(|c| &c.name == name && *c == t.key);
            if !keep {
                tracing::info!(check = %name, "check stopped");
            }
            keep
        });
        for spec in &d.checks {
            if !self.checks.contains_key(&spec.name) {
                self.health.reset_check(&spec.name);
                let handle = checks::spawn(spec.clone(), self.health.clone());
                self.checks.insert(
                    spec.name.clone(),
                    Task {
                        key: spec.clone(),
                        handle,
                    },
                );
            }
        }

        let health = &self.health;
        let cfg_rx = self.cfg_tx.subscribe();
        let feed: Arc<dyn report::http::PoolPage> = Arc::new(PoolPageOn {
            pool: self.planes.pool.handle().clone(),
            feed: crate::pool::page::Feed {
                view: self.pool_tx.subscribe(),
                history: self.pool_history.clone(),
            },
        });
        let metrics = self.metrics.clone();
        let start_report = |k: ReportKey, socks: Vec<Arc<TcpListener>>, http: bool| {
            let gate = Gate::new(k.1.clone());
            let serves: Vec<_> = socks
                .iter()
                .map(|l| {
                    let (l, health, gate) = (l.clone(), health.clone(), gate.clone());
                    let (cfg_rx, feed) = (cfg_rx.clone(), feed.clone());
                    let metrics = metrics.clone();
                    async move {
                        if http {
                            report::http::serve(l, health, gate, cfg_rx, feed, metrics).await
                        } else {
                            report::agent_check::serve(l, health, gate).await
                        }
                    }
                })
                .collect();
            // Aborting the task stops every socket's accept loop at once.
            let handle = tokio::spawn(async move {
                futures::future::join_all(serves).await;
            });
            Listening {
                task: Task { key: k, handle },
                socks,
            }
        };
        match http {
            Next::Keep => {}
            Next::Stop => self.http = None,
            Next::Start(k, socks) => self.http = Some(start_report(k, socks, true)),
        }
        match agent {
            Next::Keep => {}
            Next::Stop => self.agent = None,
            Next::Start(k, socks) => self.agent = Some(start_report(k, socks, false)),
        }
        match acme {
            Next::Keep => {}
            Next::Stop => self.acme = None,
            Next::Start(k, socks) => {
                let (root, addrs) = k.clone();
                tracing::info!(webroot = %root.display(), listen = ?addrs, "serving ACME HTTP-01 challenges");
                let bound = socks.clone();
                self.acme = Some(Listening {
                    task: Task {
                        handle: self.planes.edge.handle().spawn(async move {
                            if let Err(e) = crate::edge::acme::serve_bound(root, bound).await {
                                tracing::error!("ACME HTTP-01 responder stopped: {e}");
                            }
                        }),
                        key: k,
                    },
                    socks,
                });
            }
        }
        let pk = (!d.pool.peers.is_empty()).then(|| d.pool.clone());
        if self.pool.as_ref().map(|t| &t.key) != pk.as_ref() {
            self.pool = None;
            if let Some(k) = pk {
                tracing::info!(peers = k.peers.len(), interval = %lvs_shared::duration::format(k.interval), "polling the pool");
                self.pool = Some(Task {
                    handle: self.planes.pool.handle().spawn(crate::pool::run(
                        k.clone(),
                        self.cfg_tx.subscribe(),
                        self.health.clone(),
                        self.pool_tx.clone(),
                        self.pool_history.clone(),
                    )),
                    key: k,
                });
            }
        }
        if let Some(prepared) = redirect {
            self.redirect = self
                .planes
                .edge
                .enter(|| crate::edge::redirect::spawn(prepared))
                .into_iter()
                .map(|handle| Task {
                    key: cfg.redirects.clone(),
                    handle,
                })
                .collect();
        }
        match (&cfg.bfd, bfd_bound) {
            (None, _) => {
                if let Some(old) = self.bfd.take() {
                    tracing::info!("BFD stopped: no [bfd] any more");
                    old.stop().await;
                }
            }
            (Some(b), Some(bound)) => {
                if let Some(old) = self.bfd.take() {
                    old.stop().await;
                }
                tracing::info!(source = %b.source, directors = ?b.directors, "speaking BFD to the directors");
                let node = self.health.subscribe_state();
                self.bfd = Some(
                    self.planes
                        .bfd
                        .enter(|| crate::report::bfd::Speaker::spawn(b.clone(), bound, node)),
                );
            }
            (Some(b), None) => {
                if let Some(s) = self.bfd.as_mut() {
                    if s.key != *b {
                        s.reconfigure(b.clone());
                    }
                }
            }
        }
        if let Some(bound) = control {
            self.control = None;
            let l = match bound {
                Some(l) => l,
                None => match crate::report::control::bind(&ck.0) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("cannot create the control socket {}: {e}", ck.0.display());
                        return Ok(());
                    }
                },
            };
            self.control = Some(Task {
                handle: tokio::spawn(crate::report::control::serve(
                    l,
                    self.health.clone(),
                    ck.1.clone(),
                )),
                key: ck,
            });
        }
        Ok(())
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
        loop {
            tokio::select! {
                _ = refresh.tick() => self.health.refresh(),
                _ = hup.recv() => self.reload().await,
                _ = term.recv() => return self.stop("SIGTERM").await,
                _ = int.recv() => return self.stop("SIGINT").await,
                _ = wd_tick.tick(), if wd.is_some() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
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

/// Refreshes the load inputs of the weight: established VIP sessions (sock_diag) and the
/// 1-minute load average.
async fn load_loop(health: Arc<Health>, cfg_rx: watch::Receiver<Arc<NodeConfig>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let eps = crate::health::sockdiag::vip_endpoints(&cfg_rx.borrow());
        let sessions =
            tokio::task::spawn_blocking(move || crate::health::sockdiag::count_established(&eps))
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or(0);
        let load1 = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        health.set_load(sessions, load1);
    }
}

/// `/pool` rendered on the pool plane: the page can be megabytes for a large pool, and the
/// director plane only waits for the bytes.
struct PoolPageOn {
    pool: tokio::runtime::Handle,
    feed: crate::pool::page::Feed,
}

impl report::http::PoolPage for PoolPageOn {
    fn render(
        &self,
        snap: Arc<crate::health::Snapshot>,
        cfg: Arc<NodeConfig>,
    ) -> futures::future::BoxFuture<'static, String> {
        let feed = self.feed.clone();
        let pool = self.pool.clone();
        Box::pin(async move {
            pool.spawn_blocking(move || crate::pool::page::assemble(&snap, &cfg, &feed))
                .await
                .unwrap_or_default()
        })
    }
}
