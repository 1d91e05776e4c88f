//! The redirector: `[[redirect]]` listeners on a VIP that answer every request with a
//! redirect to a node's own address, so that an upload's payload goes from the client to
//! the node and never through the director (in LVS-DR only client-to-server packets cross
//! the director, and an upload is nearly all client-to-server).
//!
//! The request body is never read and `100 Continue` is never sent: a client that asks
//! with `Expect: 100-continue` gets the redirect before it sends any payload, and sends it
//! only to the target. One request per connection, then a short bounded drain of whatever
//! a client without `Expect` already sent (so the close does not reset the connection
//! before the client read the answer), then close.
//!
//! Every client of the internet may connect, so admission goes through the same gate as
//! the report endpoints ([`crate::util::gate`]): at most [`MAX_CONNECTIONS`] per listener,
//! [`MAX_PER_SOURCE`] per IPv4 address or IPv6 /64, and a whole connection (TLS handshake,
//! head, answer, drain) lasts at most [`LIFETIME`].

pub mod choose;
pub mod pool_view;
pub mod tls;

use bytes::Bytes;
use choose::Chooser;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use lvs_shared::config::redirect::Redirect;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

use crate::util::gate::{Gate, Limits};

/// Connections served at once per listener; more are closed at once. Counted in the
/// agent's file descriptor budget (`util::fds`).
pub const MAX_CONNECTIONS: usize = crate::util::fds::REDIRECT_SLOTS;
/// Connections one IPv4 address or IPv6 /64 may hold at once on one listener. A redirect
/// takes milliseconds, so even a site's whole farm behind one NAT address stays below it.
pub const MAX_PER_SOURCE: usize = 64;
/// The longest a connection may live, however it is used: handshake + head + drain.
pub const LIFETIME: Duration = Duration::from_secs(20);
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// What a client that did not wait for `100 Continue` may still send after the answer.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);
/// Seconds a client should wait before retrying when no node may take the request.
const RETRY_AFTER_SECS: &str = "5";

/// Answers counted by listener, target ("-" for none) and status, for `/metrics`. One
/// family for every listener, registered once when the daemon starts; targets are the
/// validated ones a node may send clients to, so the label set stays bounded by the pool.
#[derive(Clone, Debug, Default)]
pub struct Counts(Family<Vec<(&'static str, String)>, Counter>);

impl Counts {
    /// Registers the family into `reg` (the directors' part: targets name other hosts).
    pub fn register(reg: &mut Registry) -> Counts {
        let c = Counts::default();
        reg.register(
            "redirects",
            "Requests answered by the [[redirect]] listeners, by target (\"-\" when none could take it) and status",
            c.0.clone(),
        );
        c
    }

    fn count(&self, listen: SocketAddr, target: &str, status: u16) {
        self.0
            .get_or_create(&vec![
                ("listen", listen.to_string()),
                ("target", target.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }
}

/// Binds the listener. IP_FREEBIND lets it bind a VIP that the data plane has not put in
/// place yet (or is repairing): connections arrive once the VIP is there.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    s.set_reuseport(true)?;
    nix::sys::socket::setsockopt(&s.as_fd(), nix::sys::socket::sockopt::IpFreebind, &true)
        .map_err(std::io::Error::from)?;
    s.bind(addr)?;
    s.listen(1024)
}

/// One listener's settings, ready to serve.
pub struct Spec {
    pub cfg: Redirect,
    pub chooser: Chooser,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub counts: Counts,
}

/// The gate of one listener: everyone is public (no director reserve on the VIP).
pub fn gate() -> Gate {
    Gate::new(Limits {
        allow: Vec::new(),
        public: true,
        max: MAX_CONNECTIONS,
        per_source: MAX_PER_SOURCE,
    })
}

pub async fn serve(listener: TcpListener, spec: Arc<Spec>) {
    let gate = gate();
    loop {
        // Refused connections (over the per-source cap, or at capacity) are closed at once.
        let (stream, permit) = gate.accept(&listener).await;
        let _ = stream.set_nodelay(true);
        let spec = spec.clone();
        tokio::spawn(async move {
            let serve = async {
                match &spec.tls {
                    None => one_request(stream, &spec).await,
                    Some(acc) => {
                        if let Ok(Ok(tls)) =
                            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acc.accept(stream)).await
                        {
                            one_request(tls, &spec).await;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(LIFETIME, serve).await;
            drop(permit);
        });
    }
}

async fn one_request<S>(io: S, spec: &Arc<Spec>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let s = spec.clone();
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let r = answer(&s, &req);
        // The body (`req`) is dropped unread: hyper then never sends 100 Continue.
        drop(req);
        async move { Ok::<_, Infallible>(r) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), svc)
        .without_shutdown();
    let parts = match tokio::time::timeout(HEAD_TIMEOUT * 2, conn).await {
        Ok(Ok(p)) => p,
        _ => return,
    };
    let mut io = parts.io.into_inner();
    let _ = io.shutdown().await;
    let mut left = DRAIN_BYTES.saturating_sub(parts.read_buf.len());
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// The answer to one request: the redirect, or 503 when no node may take it.
pub fn answer<B>(spec: &Spec, req: &Request<B>) -> Response<Full<Bytes>> {
    let listen = spec.cfg.listen;
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    let mut r = match spec.chooser.pick(listen) {
        Some(base) => {
            let status =
                StatusCode::from_u16(spec.cfg.status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
            let location = format!("{base}{pq}");
            spec.counts.count(listen, &base, status.as_u16());
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = status;
            match HeaderValue::from_str(&location) {
                Ok(v) => {
                    r.headers_mut().insert(LOCATION, v);
                }
                Err(_) => {
                    *r.status_mut() = StatusCode::BAD_REQUEST;
                }
            }
            r
        }
        None => {
            spec.counts.count(listen, "-", 503);
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"no node of the pool can take this request now; retry later\n",
            )));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
    };
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Listeners bound and ready to serve, not yet running.
pub type Prepared = Vec<(TcpListener, Arc<Spec>)>;

/// Binds every `[[redirect]]` listener of `cfg` and loads its certificate, without serving
/// yet: a reload that cannot bind or load one keeps the running listeners. `pool` is the
/// view `choose = "pool"` listeners pick from. The sockets use SO_REUSEPORT, so a new
/// listener binds while the one it replaces still runs.
pub fn prepare(
    cfg: &[Redirect],
    pool: Arc<dyn choose::PoolView>,
    counts: &Counts,
) -> Result<Prepared, String> {
    let fqdn = crate::util::host::node_fqdn();
    let mut bound = Vec::new();
    for (i, r) in cfg.iter().enumerate() {
        let tls = match &r.tls {
            Some(t) => {
                Some(tls::acceptor(&t.cert, &t.key).map_err(|e| format!("redirect[{i}]: {e}"))?)
            }
            None => None,
        };
        let chooser = match r.choose {
            lvs_shared::config::redirect::Choose::SelfNode => {
                Chooser::SelfNode(r.target_base(&fqdn))
            }
            lvs_shared::config::redirect::Choose::Pool => Chooser::Pool(pool.clone()),
        };
        let l = bind(r.listen)
            .map_err(|e| format!("cannot listen on redirect[{i}] {}: {e}", r.listen))?;
        bound.push((
            l,
            Arc::new(Spec {
                cfg: r.clone(),
                chooser,
                tls,
                counts: counts.clone(),
            }),
        ));
    }
    Ok(bound)
}

/// Serves prepared listeners.
pub fn spawn(prepared: Prepared) -> Vec<tokio::task::JoinHandle<()>> {
    prepared
        .into_iter()
        .map(|(l, s)| {
            tracing::info!(listen = %s.cfg.listen, choose = s.cfg.choose.as_str(), status = s.cfg.status, tls = s.tls.is_some(), "redirecting uploads");
            tokio::spawn(serve(l, s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_shared::config::redirect::Choose;

    fn spec(chooser: Chooser, status: u16) -> Spec {
        Spec {
            cfg: Redirect {
                listen: "192.0.2.100:8000".parse().unwrap(),
                tls: None,
                target: None,
                status,
                choose: Choose::SelfNode,
            },
            chooser,
            tls: None,
            counts: Counts::default(),
        }
    }

    #[test]
    fn location_keeps_path_and_query() {
        let s = spec(Chooser::SelfNode("http://n1.example.org:8000".into()), 308);
        let req = Request::put("/store/a%20b?x=1&y=2").body(()).unwrap();
        let r = answer(&s, &req);
        assert_eq!(r.status(), 308);
        assert_eq!(
            r.headers()[LOCATION],
            "http://n1.example.org:8000/store/a%20b?x=1&y=2"
        );
        assert_eq!(r.headers()[CONNECTION], "close");
    }

    #[test]
    fn empty_pool_is_503_with_retry_after() {
        let s = spec(Chooser::Pool(Arc::new(choose::Fixed(vec![]))), 307);
        let r = answer(&s, &Request::get("/x").body(()).unwrap());
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], RETRY_AFTER_SECS);
    }
}
