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
//!
//! A socket that cannot be bound because the source address is not (yet) on the host is
//! retried with backoff ([`RETRY_FIRST`] doubling up to [`RETRY_MAX`]): an address that
//! arrives after the agent (keepalived, DHCP, a late interface) brings the sessions up
//! without a reload. An Up session takes a packet only with its own discriminator in Your
//! Discriminator: a Down with zero there (which RFC 5880 6.8.6 lets through for session
//! lookup) comes from a remote that lost the session, or from a forger who does not know the
//! discriminator; either way the detection time settles it.

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

/// The first wait before a failed bind is tried again.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two bind attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(10);

/// When to try a failed bind again: doubling from [`RETRY_FIRST`] up to [`RETRY_MAX`].
struct Retry {
    at: Instant,
    wait: Duration,
    attempts: u32,
}

impl Retry {
    fn new(now: Instant) -> Retry {
        Retry {
            at: now + RETRY_FIRST,
            wait: RETRY_FIRST,
            attempts: 1,
        }
    }
    fn failed(&mut self, now: Instant) {
        self.wait = (self.wait * 2).min(RETRY_MAX);
        self.at = now + self.wait;
        self.attempts += 1;
    }
}

/// The receive socket, bound before a (re)configuration takes over; None while the source
/// address is not on the host (the speaker retries).
pub struct Bound {
    rx: Option<UdpSocket>,
}

/// Binds UDP 3784 on the source address. An address that is not on the host (yet) is not
/// an error: the speaker binds it once it appears. Any other failure (the port taken by
/// another BFD speaker, no permission) refuses the configuration.
pub fn bind(cfg: &Bfd) -> Result<Bound, String> {
    match io::bind_rx(cfg.source) {
        Ok(rx) => Ok(Bound { rx: Some(rx) }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            tracing::warn!(
                source = %cfg.source,
                "bfd.source is not an address of this host yet: BFD sessions wait for it (retried with backoff up to every {} s)",
                RETRY_MAX.as_secs()
            );
            Ok(Bound { rx: None })
        }
        Err(e) => Err(format!(
            "bfd.source: cannot listen on {}:{}: {e}",
            cfg.source,
            io::PORT
        )),
    }
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
    /// None until the send socket is bound; `retry` says when to try again.
    tx: Option<UdpSocket>,
    retry: Option<Retry>,
    /// The remote's last timers as sent (microseconds), to log a change once.
    remote_timers: Option<(u32, u32)>,
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
    let now = Instant::now();
    let mut session = Session::new(
        discriminator(peers),
        cfg.min_tx,
        cfg.min_rx,
        cfg.multiplier,
        now.into_std(),
    );
    if down {
        session.set_admin_down(true);
    }
    figures(|f| f.state.insert(addr, session.state));
    let (tx, retry) = match io::bind_tx(cfg.source) {
        Ok(tx) => {
            tracing::info!(director = %addr, state = session.state.as_str(), "BFD session started");
            (Some(tx), None)
        }
        Err(e) => {
            tracing::error!(
                director = %addr,
                "BFD session waiting: cannot bind a source port on {}: {e}; retried with backoff up to every {} s",
                cfg.source,
                RETRY_MAX.as_secs()
            );
            (None, Some(Retry::new(now)))
        }
    };
    peers.push(Peer {
        addr,
        session,
        tx,
        retry,
        remote_timers: None,
    });
}

/// Tries a failed send socket again once its time has come.
fn retry_tx(source: IpAddr, p: &mut Peer, now: Instant) {
    let Some(r) = p.retry.as_mut() else { return };
    if r.at > now {
        return;
    }
    match io::bind_tx(source) {
        Ok(tx) => {
            tracing::info!(director = %p.addr, attempts = r.attempts + 1, "BFD session started: source port bound");
            p.tx = Some(tx);
            p.retry = None;
        }
        Err(e) => {
            r.failed(now);
            tracing::debug!(director = %p.addr, "BFD source port still not bound: {e}");
        }
    }
}

/// Tries the receive socket again once its time has come.
fn retry_rx(source: IpAddr, rx: &mut Option<UdpSocket>, r: &mut Retry, now: Instant) {
    if rx.is_some() || r.at > now {
        return;
    }
    match io::bind_rx(source) {
        Ok(s) => {
            tracing::info!(%source, attempts = r.attempts + 1, "BFD listening on {source}:{}", io::PORT);
            *rx = Some(s);
        }
        Err(e) => {
            r.failed(now);
            tracing::debug!(%source, "BFD receive socket still not bound: {e}");
        }
    }
}

/// Sends the session's packet; without a bound socket the packet is lost like one dropped
/// on the wire, and the next one is scheduled all the same.
async fn send(p: &mut Peer) {
    let pkt = p.session.packet();
    let to = std::net::SocketAddr::new(p.addr, io::PORT);
    if let Some(tx) = &p.tx {
        if let Err(e) = tx.send_to(&pkt.encode(), to).await {
            tracing::debug!(director = %p.addr, "BFD send failed: {e}");
        }
    }
    p.session.sent(Instant::now().into_std(), fastrand::f64());
}

/// Waits for a datagram on the receive socket, or forever while it is not bound.
async fn recv_opt(rx: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<io::Datagram> {
    match rx {
        Some(s) => io::recv(s, buf).await,
        None => std::future::pending().await,
    }
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
    mut rx: Option<UdpSocket>,
    mut node: watch::Receiver<NodeState>,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
) {
    let source = cfg.source;
    let mut rx_retry = Retry::new(Instant::now());
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
        let retries = peers
            .iter()
            .filter_map(|p| p.retry.as_ref().map(|r| r.at))
            .chain(rx.is_none().then_some(rx_retry.at))
            .map(Instant::into_std);
        let wake = peers
            .iter()
            .flat_map(|p| [p.session.next_tx(), p.session.detect_at()])
            .flatten()
            .chain(retries)
            .min()
            .map(Instant::from_std)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            r = recv_opt(rx.as_ref(), &mut buf) => match r {
                Ok(d) => receive(&mut peers, &buf[..d.len.min(buf.len())], d).await,
                Err(e) => {
                    tracing::debug!("BFD receive failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = tokio::time::sleep_until(wake) => {
                retry_rx(source, &mut rx, &mut rx_retry, Instant::now());
                let now = Instant::now().into_std();
                let due = |p: &Peer| p.session.next_tx().is_some_and(|at| at <= now);
                // One wakeup serves every session: with one packet due, the others go
                // too when their spacing allows (`may_send_early`). Once two sessions
                // went out together they stay together, and the thread wakes once per
                // interval for all of them instead of once per session.
                let any_due = peers.iter().any(due);
                for p in &mut peers {
                    retry_tx(source, p, Instant::from_std(now));
                    if let Some(t) = p.session.expire(now) {
                        note(p.addr, t, p.session.diag);
                        send(p).await;
                    }
                    if due(p) || (any_due && p.session.may_send_early(now)) {
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
    if pkt.your_disc == 0 && p.session.state == State::Up {
        // An Up session is known to the remote by its discriminator. Zero here is a remote
        // that lost the session (it times out here within the detection time) or a forger
        // who has not seen the discriminator: neither may take the session down at once.
        reject("discriminator");
        tracing::debug!(from = %d.from, state = pkt.state.as_str(), "BFD packet without our discriminator dropped: the session is Up");
        return;
    }
    log_remote_timers(p, &pkt);
    let now = Instant::now().into_std();
    let t = p.session.receive(&pkt, now);
    if let Some(t) = t {
        note(p.addr, t, p.session.diag);
    }
    if t.is_some() || p.session.final_due {
        send(p).await;
    }
}

/// Logs the remote's timers when they change and are out of the ordinary: zero Required Min
/// RX (no periodic packets wanted, RFC 5880 6.8.7) or values beyond the clamps.
fn log_remote_timers(p: &mut Peer, pkt: &Packet) {
    let now = (pkt.desired_min_tx, pkt.required_min_rx);
    if p.remote_timers == Some(now) {
        return;
    }
    p.remote_timers = Some(now);
    let us = |d: Duration| d.as_micros().min(u128::from(u32::MAX)) as u32;
    let (max_rx, max_tx) = (us(p.session.max_remote_rx()), us(p.session.max_remote_tx()));
    if pkt.required_min_rx == 0 {
        tracing::warn!(
            director = %p.addr,
            "BFD director asks for no periodic packets (Required Min RX 0): sending only on changes until it asks again or the session resets"
        );
    }
    if pkt.required_min_rx > max_rx || pkt.desired_min_tx > max_tx {
        tracing::warn!(
            director = %p.addr,
            desired_min_tx_us = pkt.desired_min_tx,
            required_min_rx_us = pkt.required_min_rx,
            max_required_min_rx_us = max_rx,
            max_desired_min_tx_us = max_tx,
            "BFD director's timers beyond the bounds: clamped"
        );
    }
}
