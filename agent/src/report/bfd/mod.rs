//! `[bfd]`: one BFD session (RFC 5880 asynchronous mode, RFC 5881 single hop) to each
//! director, so a director's `BFD_CHECK` hears within one packet that this node went down,
//! was drained or put in maint, or stops. The session is Up only while the node state is
//! `up`; any other state turns it AdminDown (diagnostic 7) with a packet sent at once, not
//! at the next interval. SIGTERM sends AdminDown before the agent exits. On the wire an
//! AdminDown session says Down with diagnostic 7 ([`session::Session::packet`]): a director
//! ignores a neighbour's AdminDown state (RFC 5882 section 3.2) but acts on Down.
//!
//! [`packet`] is the wire format and its checks, [`session`] the state machine (no I/O),
//! [`io`] the sockets (TTL 255 sent and required, source port 49152-65535). This module runs
//! every session on one task and keeps the figures `/metrics` shows.

pub mod io;
pub mod packet;
pub mod session;

use crate::health::NodeState;
use lvs_shared::config::bfd::Bfd;
use packet::{Packet, State};
use session::{Cause, Session, Transition};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Session state per director, transitions by (director, new state, cause), and packets
/// dropped by reason; read by every scrape.
#[derive(Default)]
struct Figures {
    state: BTreeMap<IpAddr, State>,
    transitions: BTreeMap<(IpAddr, State, Cause), u64>,
    rejected: BTreeMap<&'static str, u64>,
}

static FIGURES: Mutex<Figures> = Mutex::new(Figures {
    state: BTreeMap::new(),
    transitions: BTreeMap::new(),
    rejected: BTreeMap::new(),
});

fn figures<R>(f: impl FnOnce(&mut Figures) -> R) -> R {
    f(&mut FIGURES.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The state of each session (by director).
pub fn states() -> Vec<(IpAddr, State)> {
    figures(|f| f.state.iter().map(|(a, s)| (*a, *s)).collect())
}

/// Transitions since start: (director, new state, cause) and count.
pub fn transitions() -> Vec<((IpAddr, State, Cause), u64)> {
    figures(|f| f.transitions.iter().map(|(k, v)| (*k, *v)).collect())
}

/// Received packets dropped, by reason.
pub fn rejected() -> Vec<(&'static str, u64)> {
    figures(|f| f.rejected.iter().map(|(k, v)| (*k, *v)).collect())
}

/// The sessions' figures for `/metrics`, registered into the directors' part (the labels
/// name the directors). Reads this module's own figures at each scrape.
#[derive(Debug)]
pub struct BfdCollector;

impl prometheus_client::collector::Collector for BfdCollector {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
        type Labels = Vec<(&'static str, String)>;
        let state = Family::<Labels, Gauge>::default();
        let tr = Family::<Labels, Counter>::default();
        let rej = Family::<Labels, Counter>::default();
        figures(|f| {
            for (dir, st) in &f.state {
                state
                    .get_or_create(&vec![("director", dir.to_string())])
                    .set(*st as i64);
            }
            for ((dir, to, cause), n) in &f.transitions {
                tr.get_or_create(&vec![
                    ("director", dir.to_string()),
                    ("to", to.as_str().to_string()),
                    ("cause", cause.as_str().to_string()),
                ])
                .inc_by(*n);
            }
            for (reason, n) in &f.rejected {
                rej.get_or_create(&vec![("reason", reason.to_string())])
                    .inc_by(*n);
            }
        });
        let m = enc.encode_descriptor(
            "bfd_session_state",
            "State of the BFD session to each director: 0 admin_down, 1 down, 2 init, 3 up",
            None,
            state.metric_type(),
        )?;
        state.encode(m)?;
        let m = enc.encode_descriptor(
            "bfd_transitions",
            "BFD session state changes, by director, new state and cause",
            None,
            tr.metric_type(),
        )?;
        tr.encode(m)?;
        let m = enc.encode_descriptor(
            "bfd_rejected_packets",
            "Received BFD packets dropped: unknown_source, ttl, invalid, discriminator",
            None,
            rej.metric_type(),
        )?;
        rej.encode(m)
    }
}

fn reject(reason: &'static str) {
    figures(|f| *f.rejected.entry(reason).or_insert(0) += 1);
}

/// The receive socket, bound before a (re)configuration takes over.
pub struct Bound {
    rx: UdpSocket,
}

/// Binds UDP 3784 on the source address.
pub fn bind(cfg: &Bfd) -> Result<Bound, String> {
    io::bind_rx(cfg.source).map(|rx| Bound { rx }).map_err(|e| {
        format!(
            "bfd.source: cannot listen on {}:{}: {e}",
            cfg.source,
            io::PORT
        )
    })
}

enum Cmd {
    Reconfigure(Bfd),
    Stop(oneshot::Sender<()>),
}

/// The running speaker.
pub struct Speaker {
    pub key: Bfd,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: JoinHandle<()>,
}

impl Speaker {
    pub fn spawn(cfg: Bfd, bound: Bound, node: watch::Receiver<NodeState>) -> Speaker {
        let (tx, rx) = mpsc::unbounded_channel();
        let key = cfg.clone();
        let task = tokio::spawn(run(cfg, bound.rx, node, rx));
        Speaker { key, cmd: tx, task }
    }

    /// New directors or timers with the same source: sessions are kept, added or removed
    /// (a removed director gets AdminDown first), timers change through a Poll Sequence.
    pub fn reconfigure(&mut self, cfg: Bfd) {
        self.key = cfg.clone();
        let _ = self.cmd.send(Cmd::Reconfigure(cfg));
    }

    /// Sends AdminDown on every session, then ends the task.
    pub async fn stop(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Stop(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Peer {
    addr: IpAddr,
    session: Session,
    tx: UdpSocket,
}

/// A discriminator unique among this agent's sessions and never zero.
fn discriminator(peers: &[Peer]) -> u32 {
    loop {
        let d = fastrand::u32(1..);
        if !peers.iter().any(|p| p.session.local_disc == d) {
            return d;
        }
    }
}

fn add_peer(cfg: &Bfd, addr: IpAddr, peers: &mut Vec<Peer>, down: bool) {
    match io::bind_tx(cfg.source) {
        Ok(tx) => {
            let now = Instant::now().into_std();
            let mut session = Session::new(
                discriminator(peers),
                cfg.min_tx,
                cfg.min_rx,
                cfg.multiplier,
                now,
            );
            if down {
                session.set_admin_down(true);
            }
            figures(|f| f.state.insert(addr, session.state));
            tracing::info!(director = %addr, state = session.state.as_str(), "BFD session started");
            peers.push(Peer { addr, session, tx });
        }
        Err(e) => {
            tracing::error!(director = %addr, "BFD session not started: cannot bind a source port on {}: {e}", cfg.source)
        }
    }
}

async fn send(p: &mut Peer) {
    let pkt = p.session.packet();
    let to = std::net::SocketAddr::new(p.addr, io::PORT);
    if let Err(e) = p.tx.send_to(&pkt.encode(), to).await {
        tracing::debug!(director = %p.addr, "BFD send failed: {e}");
    }
    p.session.sent(Instant::now().into_std(), fastrand::f64());
}

fn note(addr: IpAddr, t: Transition, diag: packet::Diag) {
    figures(|f| {
        f.state.insert(addr, t.to);
        *f.transitions.entry((addr, t.to, t.cause)).or_insert(0) += 1;
    });
    let (from, to, cause) = (t.from.as_str(), t.to.as_str(), t.cause.as_str());
    if t.from == State::Up {
        tracing::warn!(director = %addr, from, to, cause, diag = diag.as_str(), "BFD session left Up");
    } else {
        tracing::info!(director = %addr, from, to, cause, "BFD session state changed");
    }
}

async fn run(
    cfg: Bfd,
    rx: UdpSocket,
    mut node: watch::Receiver<NodeState>,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut down = *node.borrow_and_update() != NodeState::Up;
    let mut peers: Vec<Peer> = Vec::new();
    for a in cfg.directors.clone() {
        add_peer(&cfg, a, &mut peers, down);
    }
    for p in &mut peers {
        send(p).await;
    }
    let mut buf = [0u8; 128];
    loop {
        let wake = peers
            .iter()
            .flat_map(|p| [p.session.next_tx(), p.session.detect_at()])
            .flatten()
            .min()
            .map(Instant::from_std)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            r = io::recv(&rx, &mut buf) => match r {
                Ok(d) => receive(&mut peers, &buf[..d.len.min(buf.len())], d).await,
                Err(e) => {
                    tracing::debug!("BFD receive failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now().into_std();
                for p in &mut peers {
                    if let Some(t) = p.session.expire(now) {
                        note(p.addr, t, p.session.diag);
                        send(p).await;
                    }
                    if p.session.next_tx().is_some_and(|at| at <= now) {
                        send(p).await;
                    }
                }
            }
            ch = node.changed() => {
                if ch.is_err() {
                    return;
                }
                let state = *node.borrow_and_update();
                down = state != NodeState::Up;
                for p in &mut peers {
                    if let Some(t) = p.session.set_admin_down(down) {
                        note(p.addr, t, p.session.diag);
                        // The change is announced now, not at the next interval.
                        send(p).await;
                    }
                }
            }
            c = cmd.recv() => match c {
                None => return,
                Some(Cmd::Stop(ack)) => {
                    for p in &mut peers {
                        if let Some(t) = p.session.set_admin_down(true) {
                            note(p.addr, t, p.session.diag);
                        }
                        send(p).await;
                    }
                    let _ = ack.send(());
                    return;
                }
                Some(Cmd::Reconfigure(new)) => {
                    let mut kept = Vec::new();
                    for mut p in peers.drain(..) {
                        if new.directors.contains(&p.addr) {
                            p.session.reconfigure(new.min_tx, new.min_rx, new.multiplier);
                            kept.push(p);
                        } else {
                            if let Some(t) = p.session.set_admin_down(true) {
                                note(p.addr, t, p.session.diag);
                            }
                            send(&mut p).await;
                            figures(|f| f.state.remove(&p.addr));
                            tracing::info!(director = %p.addr, "BFD session removed");
                        }
                    }
                    peers = kept;
                    for a in &new.directors {
                        if !peers.iter().any(|p| p.addr == *a) {
                            add_peer(&new, *a, &mut peers, down);
                        }
                    }
                }
            }
        }
    }
}

/// Reception (RFC 5880 6.8.6, RFC 5881 section 5): only from a configured director, only
/// with TTL 255, only packets that pass the checks, only for our discriminator.
async fn receive(peers: &mut [Peer], bytes: &[u8], d: io::Datagram) {
    let Some(p) = peers.iter_mut().find(|p| p.addr == d.from.ip()) else {
        reject("unknown_source");
        tracing::debug!(from = %d.from, "BFD packet from an address that is not a configured director dropped");
        return;
    };
    if d.ttl != Some(io::TTL) {
        reject("ttl");
        tracing::debug!(from = %d.from, ttl = ?d.ttl, "BFD packet with TTL below 255 dropped");
        return;
    }
    let pkt: Packet = match Packet::decode(bytes) {
        Ok(p) => p,
        Err(e) => {
            reject("invalid");
            tracing::debug!(from = %d.from, "BFD packet dropped: {e}");
            return;
        }
    };
    if pkt.your_disc != 0 && pkt.your_disc != p.session.local_disc {
        reject("discriminator");
        return;
    }
    let now = Instant::now().into_std();
    let t = p.session.receive(&pkt, now);
    if let Some(t) = t {
        note(p.addr, t, p.session.diag);
    }
    if t.is_some() || p.session.final_due {
        send(p).await;
    }
}
