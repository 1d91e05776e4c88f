//! The data plane side of `lvs-node run`: the loop that keeps the node converged (rtnetlink
//! events for the VIPs and links, plus the recheck interval for what sends no event, such as
//! sysctls and arptables rules), on a thread of its own. It runs external tools (`nft`,
//! `arptables`) that block: a hung tool must never stall `/health`, the agent-check, the
//! control socket or the watchdog on the main runtime.

use crate::health::checks::dataplane;
use crate::health::{Health, DATAPLANE};
use futures::StreamExt;
use lvs_shared::config::NodeConfig;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::RouteNetlinkMessage;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The data plane check's staleness bound: a repair cycle runs a few external tools, each
/// bounded by the tool timeout.
pub(super) fn dataplane_stale(cfg: &NodeConfig) -> Duration {
    cfg.daemon.recheck_interval * 2 + crate::dataplane::arp::TOOL_TIMEOUT * 4
}

/// The data plane loop on a thread of its own with its own single-threaded runtime, so the
/// blocking tools it runs never stall the reporters on the main runtime.
pub(super) struct DataplaneThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl DataplaneThread {
    pub(super) fn spawn(
        dp: DataplaneLoop,
        events: Events,
        cfg_rx: watch::Receiver<Arc<NodeConfig>>,
    ) -> std::io::Result<DataplaneThread> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || {
                rt.block_on(async {
                    tokio::select! {
                        _ = dp.run(events, cfg_rx) => {}
                        _ = stop_rx => {}
                    }
                });
                drop(rt);
                let _ = done_tx.send(());
            })?;
        Ok(DataplaneThread {
            stop: Some(stop_tx),
            done: Some(done_rx),
        })
    }

    /// Stops the loop and waits until it has (at most one tool timeout).
    pub(super) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

impl Drop for DataplaneThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub(super) struct DataplaneLoop {
    pub(super) cfg: Arc<NodeConfig>,
    pub(super) handle: rtnetlink::Handle,
    pub(super) health: Arc<Health>,
    pub(super) last_error: Option<String>,
}

pub(super) type Events = futures::channel::mpsc::UnboundedReceiver<(
    netlink_packet_core::NetlinkMessage<RouteNetlinkMessage>,
    netlink_sys::SocketAddr,
)>;

impl DataplaneLoop {
    async fn run(mut self, mut events: Events, mut cfg_rx: watch::Receiver<Arc<NodeConfig>>) {
        let mut tick = tokio::time::interval(self.cfg.daemon.recheck_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.next() => {
                    let Some((msg, _)) = ev else {
                        tracing::error!("rtnetlink event stream ended; relying on the recheck interval");
                        events = futures::channel::mpsc::unbounded().1;
                        continue;
                    };
                    let t0 = Instant::now();
                    if !self.relevant(&msg.payload) {
                        continue;
                    }
                    // A burst (e.g. link down removes several addresses) needs one repair.
                    while events.try_recv().is_ok() {}
                    let _ = self.repair_and_observe("event", t0).await;
                }
                _ = tick.tick() => {
                    let _ = self.repair_and_observe("recheck", Instant::now()).await;
                }
                ch = cfg_rx.changed() => {
                    if ch.is_err() { return; }
                    self.cfg = cfg_rx.borrow_and_update().clone();
                    tick = tokio::time::interval(self.cfg.daemon.recheck_interval);
                    let _ = self.repair_and_observe("reload", Instant::now()).await;
                }
            }
        }
    }

    /// Address events for a VIP, and any link event (a device going down and up).
    fn relevant(&self, p: &NetlinkPayload<RouteNetlinkMessage>) -> bool {
        let NetlinkPayload::InnerMessage(m) = p else {
            return false;
        };
        match m {
            RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => {
                a.attributes.iter().any(|x| match x {
                    AddressAttribute::Address(ip) | AddressAttribute::Local(ip) => {
                        self.cfg.vips.iter().any(|v| v.address == *ip)
                    }
                    _ => false,
                })
            }
            RouteNetlinkMessage::NewLink(_) | RouteNetlinkMessage::DelLink(_) => true,
            _ => false,
        }
    }

    /// Converges (when managed) and records what is observed. Returns the convergence
    /// error, if any.
    pub(super) async fn repair_and_observe(
        &mut self,
        trigger: &str,
        t0: Instant,
    ) -> Option<String> {
        let managed = self.cfg.daemon.manage_dataplane;
        let mut failed = None;
        if managed {
            match crate::dataplane::converge(&self.cfg).await {
                Ok(o) if !o.applied.is_empty() => {
                    let took = t0.elapsed();
                    let ms = took.as_secs_f64() * 1000.0;
                    if trigger == "startup" || trigger == "reload" {
                        // Converging to the config at start or after SIGHUP is the normal
                        // job, not drift: INFO, and not counted as a repair.
                        tracing::info!(trigger, steps = ?o.applied, ms, "converged the data plane");
                    } else {
                        self.health.count_repair(took);
                        let vips: Vec<IpAddr> = self.cfg.vips.iter().map(|v| v.address).collect();
                        // One entry per VIP, so the journal can be searched by VIP=.
                        for (vip, steps) in crate::util::logging::steps_by_vip(&o.applied, &vips) {
                            match vip {
                                Some(vip) => {
                                    tracing::warn!(trigger, %vip, ?steps, ms, "repaired the data plane")
                                }
                                None => {
                                    tracing::warn!(trigger, ?steps, ms, "repaired the data plane")
                                }
                            }
                        }
                    }
                    self.last_error = None;
                }
                Ok(_) => self.last_error = None,
                Err(e) => {
                    let e = e.to_string();
                    // Log a persistent failure once, not every recheck.
                    if self.last_error.as_ref() != Some(&e) {
                        tracing::error!(trigger, error = %e, "cannot converge the data plane");
                        self.last_error = Some(e.clone());
                    }
                    failed = Some(e);
                }
            }
        }
        let t1 = Instant::now();
        let obs = dataplane::observe(&self.handle, &self.cfg, managed).await;
        self.health.set_dataplane(obs.vips, obs.arp_suppressed);
        self.health.record(DATAPLANE, obs.result, t1.elapsed());
        failed
    }
}
