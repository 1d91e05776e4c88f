//! Connection admission for the network-facing listeners (`/health`, agent-check, ACME
//! responder, `[[redirect]]`): who may connect, how many connections one source may hold
//! (an IPv4 address, or an IPv6 /64: one subscriber usually gets a whole /64), a reserve
//! of slots that only the configured directors can use, and the per-connection limits (idle
//! time between requests, total lifetime). One flooding or slowloris client must never take
//! the slots a director needs for its checks, and memory stays bounded under any flood.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// What an admitted peer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Listed in `report.allow`: every path, and the reserved slots.
    Director,
    /// Anyone else let in (empty allow list, or `public_health`): the public paths only.
    Public,
}

/// Limits of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Director addresses; empty = no directors known (everyone is `Public`).
    pub allow: Vec<IpAddr>,
    /// With a non-empty allow list: whether other addresses may connect (as `Public`).
    pub public: bool,
    /// All connections at once.
    pub max: usize,
    /// Connections one source address may hold at once.
    pub per_source: usize,
}

impl Limits {
    /// Slots only directors may use: room for each director to use its per-source share,
    /// at most half of all slots. Zero without an allow list (then no director is known).
    pub fn reserve(&self) -> usize {
        if self.allow.is_empty() || !self.public {
            return 0;
        }
        (self.allow.len() * self.per_source).min(self.max / 2)
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    public: usize,
    by_source: HashMap<Source, usize>,
}

/// What the per-source cap counts: a director by its own address (two directors on one
/// LAN share a /64 but each has its share of the reserve); anyone else by its IPv4 address
/// or the /64 of its IPv6 address (a single host may use any address of its /64, so a
/// per-address cap would not bind it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Director(IpAddr),
    V4(std::net::Ipv4Addr),
    V6Net(u64),
}

fn source(peer: IpAddr, role: Role) -> Source {
    match (role, peer) {
        (Role::Director, p) => Source::Director(p),
        (_, IpAddr::V4(a)) => Source::V4(a),
        (_, IpAddr::V6(a)) => Source::V6Net((u128::from(a) >> 64) as u64),
    }
}

/// Who may connect and how many at once.
#[derive(Clone)]
pub struct Gate {
    limits: Arc<Limits>,
    counts: Arc<Mutex<Counts>>,
}

/// A held connection slot; released on drop.
pub struct Permit {
    counts: Arc<Mutex<Counts>>,
    peer: Source,
    pub role: Role,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total -= 1;
        if self.role == Role::Public {
            c.public -= 1;
        }
        if let Some(n) = c.by_source.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.peer);
            }
        }
    }
}

/// An IPv4-mapped IPv6 peer counts as its IPv4 address.
fn canonical(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        p => p,
    }
}

impl Gate {
    pub fn new(limits: Limits) -> Gate {
        Gate {
            limits: Arc::new(limits),
            counts: Arc::default(),
        }
    }

    /// A connection slot for `peer`, or None: not allowed, over its per-source share, or
    /// at capacity (then the connection is closed at once instead of queueing memory).
    pub fn admit(&self, peer: IpAddr) -> Option<Permit> {
        let peer = canonical(peer);
        let l = &self.limits;
        let role = if l.allow.contains(&peer) {
            Role::Director
        } else if l.allow.is_empty() || l.public {
            Role::Public
        } else {
            tracing::debug!(%peer, "refused: not in report.allow");
            return None;
        };
        let key = source(peer, role);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = c.by_source.get(&key).copied().unwrap_or(0);
        if mine >= l.per_source {
            tracing::debug!(%peer, "refused: per-source connection limit");
            return None;
        }
        if c.total >= l.max {
            return None;
        }
        if role == Role::Public && c.public >= l.max - l.reserve() {
            return None;
        }
        c.total += 1;
        if role == Role::Public {
            c.public += 1;
        }
        *c.by_source.entry(key).or_insert(0) += 1;
        Some(Permit {
            counts: self.counts.clone(),
            peer: key,
            role,
        })
    }

    /// The next connection this gate admits, with its slot; refused ones are closed.
    pub async fn accept(&self, listener: &TcpListener) -> (TcpStream, Permit) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    accept_pause(&e).await;
                    continue;
                }
            };
            if let Some(permit) = self.admit(peer.ip()) {
                return (stream, permit);
            }
        }
    }
}

/// Listen backlog of the network-facing listeners. A connection flood is accepted and shed
/// by the gate; a deep queue keeps a director's SYN from being dropped (and retried only after
/// a second) while the accept loop catches up. The kernel caps it at `net.core.somaxconn`.
pub const BACKLOG: u32 = 4096;

/// Binds `addr` with [`BACKLOG`] (and SO_REUSEADDR, as std and tokio do).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let s = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(BACKLOG)
}

/// Accept errors such as EMFILE must not spin the loop.
pub(crate) async fn accept_pause(e: &std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Per-connection time limits for an HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// To receive a whole request head once it has started.
    pub header: Duration,
    /// Without a byte from the client (between keep-alive requests, or a stalled head).
    pub idle: Duration,
    /// Total, however busy the client keeps it.
    pub lifetime: Duration,
}

/// Serves one HTTP/1 connection under `limits`: hyper restarts its header timer for every
/// request, so the idle limit (no byte read for `idle`) and the lifetime are enforced here.
pub async fn serve_http<S>(stream: TcpStream, limits: ConnLimits, svc: S)
where
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = stream.set_nodelay(true);
    serve_http_on(stream, limits, svc).await
}

/// [`serve_http`] on any stream (a TLS session over an admitted TCP connection).
pub async fn serve_http_on<T, S>(stream: T, limits: ConnLimits, svc: S)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = Activity::new(stream);
    let last = io.last.clone();
    let start = io.start;
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header)
        .max_buf_size(8192)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    let idle = async {
        loop {
            let seen = start + Duration::from_millis(last.load(Ordering::Relaxed));
            let due = seen + limits.idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    };
    tokio::select! {
        _ = conn => {}
        _ = idle => {}
        _ = tokio::time::sleep(limits.lifetime) => {}
    }
}

/// A stream that records when it last read a byte.
struct Activity<T> {
    inner: T,
    start: Instant,
    /// Milliseconds after `start` of the last read that returned data.
    last: Arc<AtomicU64>,
}

impl<T> Activity<T> {
    fn new(inner: T) -> Activity<T> {
        Activity {
            inner,
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last.store(ms, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Activity<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_cap_and_director_reserve() {
        let g = Gate::new(Limits {
            allow: vec![ip("10.0.0.2")],
            public: true,
            max: 8,
            per_source: 3,
        });
        // One public source: at most 3.
        let a: Vec<_> = (0..5).filter_map(|_| g.admit(ip("10.0.0.9"))).collect();
        assert_eq!(a.len(), 3);
        // Other public sources fill the public share (8 - reserve 3 = 5), not more.
        let b: Vec<_> = (0..5).filter_map(|_| g.admit(ip("10.0.0.10"))).collect();
        assert_eq!(b.len(), 2);
        assert!(g.admit(ip("10.0.0.11")).is_none());
        // The director still gets its reserved slots, as Director.
        let d: Vec<_> = (0..3).filter_map(|_| g.admit(ip("10.0.0.2"))).collect();
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|p| p.role == Role::Director));
        drop(a);
        assert!(g.admit(ip("10.0.0.9")).is_some());
        // IPv4-mapped counts as the IPv4 address.
        assert_eq!(
            g.admit(ip("::ffff:10.0.0.2")).map(|p| p.role),
            None,
            "the director is at its own cap"
        );
    }

    #[test]
    fn ipv6_sources_are_capped_per_64() {
        let g = Gate::new(Limits {
            allow: vec![],
            public: true,
            max: 64,
            per_source: 2,
        });
        // Four addresses of one /64 share one cap; another /64 has its own.
        let a: Vec<_> = [
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff::9",
            "2001:db8:1:2::4",
        ]
        .iter()
        .filter_map(|p| g.admit(ip(p)))
        .collect();
        assert_eq!(a.len(), 2);
        assert!(g.admit(ip("2001:db8:1:3::1")).is_some());
        drop(a);
        assert!(g.admit(ip("2001:db8:1:2::77")).is_some());
    }

    #[test]
    fn allow_list_without_public_refuses_others() {
        let g = Gate::new(Limits {
            allow: vec![ip("10.0.0.2")],
            public: false,
            max: 8,
            per_source: 8,
        });
        assert!(g.admit(ip("10.0.0.9")).is_none());
        assert_eq!(g.admit(ip("10.0.0.2")).unwrap().role, Role::Director);
        let open = Gate::new(Limits {
            allow: vec![],
            public: false,
            max: 8,
            per_source: 8,
        });
        assert_eq!(open.admit(ip("10.0.0.9")).unwrap().role, Role::Public);
    }
}
