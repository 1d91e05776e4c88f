//! A config put in force: at start and on SIGHUP, the running tasks are made to match it
//! (checks, listeners of every plane, the pool poller, BFD, the control socket). Everything
//! that can fail (binding) happens first, next to the running listeners; on failure nothing
//! has changed. Unchanged pieces keep running, and keep their state.

use super::dataplane_loop::dataplane_stale;
use super::Daemon;
use crate::health::checks;
use crate::report;
use crate::util::gate::{self, Gate, Limits};
use lvs_shared::config::NodeConfig;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One listener task and what it was started with, so a reload restarts only what changed.
pub(super) struct Task<K> {
    pub(super) key: K,
    pub(super) handle: JoinHandle<()>,
}

/// A TCP listener task with its bound sockets, which a reload hands on when the address
/// stays the same (the address cannot be bound twice).
pub(super) struct Listening<K> {
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

pub(super) type ReportKey = (Vec<std::net::SocketAddr>, Limits);
pub(super) type HttpsKey = (Vec<std::net::SocketAddr>, Limits, report::tls::Key);

impl<K> Drop for Task<K> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Daemon {
    /// Makes the running tasks match `cfg`: checks, listeners, control socket. Used at
    /// start and on SIGHUP; unchanged pieces keep running (and keep their check state).
    /// Everything that can fail (binding) happens first; on failure nothing has changed.
    pub(super) async fn apply(&mut self, cfg: &NodeConfig) -> Result<(), String> {
        let d = &cfg.daemon;
        let rep = &d.report;
        crate::util::fds::raise_for(cfg);

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
        super::check_tls(cfg).map_err(|e| e.to_string())?;
        // The https endpoint serves pool reads: its sockets and TLS handshakes belong to the
        // pool plane, never the director plane's threads.
        let https_addrs = addrs(rep.https, rep.https6);
        let pool_plane = &self.planes.pool;
        let https = next_listener(
            self.https.as_ref(),
            key(https_addrs.clone()).map(|(a, l)| (a, l, report::tls::Key::of(rep))),
            &https_addrs,
            "report.https",
            &|a| pool_plane.enter(|| gate::bind(a)),
        )?;
        let https_tls = match &https {
            Next::Start(..) => report::tls::server(&cfg.file, rep).map_err(|e| e.to_string())?,
            _ => None,
        };
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
        self.health.set_shared(
            &d.checks
                .iter()
                .filter(|c| c.shared)
                .map(|c| c.name.clone())
                .collect::<Vec<_>>(),
        );
        self.health.set_hold_grace(hold_grace(d));
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
        let secret = rep.macaroon_secret.clone();
        if self.macaroon.as_ref().map(|t| &t.key) != secret.as_ref() {
            self.macaroon = None;
            self.health.set_macaroon(None);
            self.macaroon = secret.map(|p| Task {
                key: p.clone(),
                handle: tokio::spawn(crate::health::macaroon::watch(p, self.health.clone())),
            });
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
        match (https, https_tls) {
            (Next::Start(k, socks), Some(tls)) => {
                let gate = Gate::new(k.1.clone());
                let serves: Vec<_> = socks
                    .iter()
                    .map(|l| {
                        report::http::serve_tls(
                            l.clone(),
                            health.clone(),
                            gate.clone(),
                            cfg_rx.clone(),
                            feed.clone(),
                            metrics.clone(),
                            tls.clone(),
                        )
                    })
                    .collect();
                self.https = Some(Listening {
                    task: Task {
                        key: k,
                        handle: self.planes.pool.handle().spawn(async move {
                            futures::future::join_all(serves).await;
                        }),
                    },
                    socks,
                });
            }
            (Next::Keep, _) => {}
            _ => self.https = None,
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
                    self.cfg_tx.subscribe(),
                )),
                key: ck,
            });
        }
        Ok(())
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

/// How long a fresh shared failure keeps the node up before `[pool] depool_threshold`
/// decides: long enough for every peer's shared check to fail (its interval times its
/// `fall`, plus its timeout, assuming the peers share this node's check schedule) and for
/// one poll round to read that (`[pool] interval` plus `timeout`). Zero without `[pool]
/// peers`, with `depool_threshold = 0` or without a shared check: nothing is held then.
fn hold_grace(d: &lvs_shared::config::daemon::Settings) -> std::time::Duration {
    let checks = d
        .checks
        .iter()
        .filter(|c| c.shared)
        .map(|c| c.interval * c.fall + c.timeout)
        .max();
    match checks {
        Some(c) if !d.pool.peers.is_empty() && d.pool.depool_threshold > 0.0 => {
            c + d.pool.interval + d.pool.timeout
        }
        _ => std::time::Duration::ZERO,
    }
}
