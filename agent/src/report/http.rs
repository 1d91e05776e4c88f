//! The HTTP endpoint: `GET /health` (200 up / 503 otherwise, one stable line), `/status`
//! (JSON), `/metrics` (Prometheus). Read-only; hyper bounds the request head; the gate bounds
//! connections and times out slow and idle clients.
//!
//! `/health` and `/metrics` are public (states, numbers and configured names only; the
//! metrics that name other hosts are for the addresses in `report.allow`).
//! `/status` carries free text (check output such as a GridFTP banner or a plugin's line,
//! the admin's drain reason), so only addresses in `report.allow` get it; so does `/pool`,
//! the HTML page of every node's /status (see `pool_page`). With `report.client_ca`, a
//! certificate decides instead of the address: `/status` and `/pool` are then served on
//! the `https` listener only (see `tls`), and the plain one gives them to nobody.

use super::metrics::Metrics;
use crate::health::{Health, Snapshot};
use crate::util::gate::{self, ConnLimits, Gate, Role};
use crate::util::ConfigRx;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use lvs_shared::config::NodeConfig;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Directors send one request per check; nobody needs to hold a slot for longer.
pub const LIMITS: ConnLimits = ConnLimits {
    header: Duration::from_secs(5),
    idle: Duration::from_secs(3),
    lifetime: Duration::from_secs(60),
};

/// [`LIMITS`], with the idle time stretched to one `[pool] interval` plus its timeout when
/// that is longer: the peers (which carry the same `[pool]`) poll `/status` once per
/// interval, and a connection kept between two polls spares each of them a TCP handshake
/// and an accept. A large pool's default interval (5 s at 50 nodes) is longer than 3 s.
pub fn limits(cfg: &NodeConfig) -> ConnLimits {
    let pool = &cfg.daemon.pool;
    let idle = if pool.peers.is_empty() {
        LIMITS.idle
    } else {
        LIMITS.idle.max(pool.interval + pool.timeout)
    };
    ConnLimits { idle, ..LIMITS }
}

/// Renders `/pool`. The pool plane implements it: a page (up to 10 MB for 256 peers) is
/// rendered on the pool's threads, never on the director plane's, and this endpoint only
/// waits for the bytes.
pub trait PoolPage: Send + Sync {
    fn render(&self, snap: Arc<Snapshot>, cfg: Arc<NodeConfig>) -> BoxFuture<'static, String>;
}

pub async fn serve(
    listener: Arc<TcpListener>,
    health: Arc<Health>,
    gate: Gate,
    cfg: ConfigRx,
    pool: Arc<dyn PoolPage>,
    metrics: Arc<Metrics>,
) {
    loop {
        let (stream, permit) = gate.accept(&listener).await;
        let health = health.clone();
        let role = match permit.role {
            Role::Director if super::tls::Server::by_certificate(&cfg.borrow().daemon.report) => {
                Role::Public
            }
            r => r,
        };
        let cfg = cfg.clone();
        let pool = pool.clone();
        let metrics = metrics.clone();
        let limits = limits(&cfg.borrow());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let h = health.clone();
                let c = cfg.borrow().clone();
                let (p, m) = (pool.clone(), metrics.clone());
                async move { Ok::<_, Infallible>(respond(&req, &h, role, c, &*p, &m).await) }
            });
            gate::serve_http(stream, limits, svc).await;
            drop(permit);
        });
    }
}

/// The `https` listener: the gate admits first, then the TLS handshake (bounded by the
/// header timeout), then the same routes, with the role the certificate gives.
pub async fn serve_tls(
    listener: Arc<TcpListener>,
    health: Arc<Health>,
    gate: Gate,
    cfg: ConfigRx,
    pool: Arc<dyn PoolPage>,
    metrics: Arc<Metrics>,
    tls: Arc<super::tls::Server>,
) {
    loop {
        let (stream, permit) = gate.accept(&listener).await;
        let (health, cfg, pool, tls) = (health.clone(), cfg.clone(), pool.clone(), tls.clone());
        let metrics = metrics.clone();
        let limits = limits(&cfg.borrow());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let peer = stream.peer_addr().ok();
            let s = match tokio::time::timeout(LIMITS.header, tls.acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(?peer, error = %e, "report https: handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(?peer, "report https: handshake timed out");
                    return;
                }
            };
            let role = tls.role(permit.role, s.get_ref().1.peer_certificates());
            let svc = hyper::service::service_fn(move |req| {
                let h = health.clone();
                let c = cfg.borrow().clone();
                let (p, m) = (pool.clone(), metrics.clone());
                async move { Ok::<_, Infallible>(respond(&req, &h, role, c, &*p, &m).await) }
            });
            gate::serve_http_on(s, limits, svc).await;
            drop(permit);
        });
    }
}

fn text(status: StatusCode, ctype: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn respond(
    req: &Request<Incoming>,
    health: &Health,
    role: Role,
    cfg: Arc<NodeConfig>,
    pool: &dyn PoolPage,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    route(
        req.method(),
        req.uri().path(),
        health,
        role,
        cfg,
        pool,
        metrics,
    )
    .await
}

pub async fn route(
    method: &Method,
    path: &str,
    health: &Health,
    role: Role,
    cfg: Arc<NodeConfig>,
    pool: &dyn PoolPage,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"read-only: GET /health, /status, /pool, /metrics\n"),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let snap = health.snapshot();
    match path {
        "/health" => {
            let code = if snap.http_ok() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(code, "text/plain", snap.health_line.clone())
        }
        "/status" if role != Role::Director => text(
            StatusCode::FORBIDDEN,
            "text/plain",
            Bytes::from_static(
                b"/status is for the addresses in report.allow, or with report.client_ca for the client certificates in report.allow_clients on report.https (it shows check output and the admin's reason); /health and /metrics are public\n",
            ),
        ),
        "/status" => {
            let doc = crate::health::status::build(&snap, &cfg);
            let body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            text(StatusCode::OK, "application/json", body.into())
        }
        "/pool" if role != Role::Director => text(
            StatusCode::FORBIDDEN,
            "text/plain",
            Bytes::from_static(
                b"/pool is for the addresses in report.allow, or with report.client_ca for the client certificates in report.allow_clients on report.https (it shows the nodes' check output and reasons); /health and /metrics are public\n",
            ),
        ),
        "/pool" => {
            let body = pool.render(snap, cfg).await;
            text(StatusCode::OK, "text/html; charset=utf-8", body.into())
        }
        // prometheus-client writes OpenMetrics (`info` type, `# EOF`): served as
        // text/plain 0.0.4, Prometheus rejects the whole scrape (invalid metric type "info").
        "/metrics" => text(
            StatusCode::OK,
            super::metrics::CONTENT_TYPE,
            metrics.render(role).into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found: GET /health, /status, /pool, /metrics\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> NodeConfig {
        NodeConfig::parse(
            std::path::Path::new("/etc/lvs-node/node.toml"),
            &format!(
                "interface = \"eth0\"\nreal_ip = \"192.0.2.11\"\n[[vip]]\naddress = \"192.0.2.100\"\nports = [2811]\n\
                 [report]\nhttp = \"192.0.2.11:8080\"\n{extra}"
            ),
        )
        .unwrap()
    }

    /// A peer's connection is kept from one poll to the next: the idle limit stretches to
    /// the pool's interval plus its timeout, never below the directors' 3 s.
    #[test]
    fn idle_limit_follows_the_pool_interval() {
        assert_eq!(limits(&cfg("")).idle, LIMITS.idle);
        let peers: Vec<String> = (1..=50)
            .map(|i| format!("\"http://10.0.0.{i}:8080\""))
            .collect();
        let big = cfg(&format!("[pool]\npeers = [{}]\n", peers.join(", ")));
        assert_eq!(limits(&big).idle, Duration::from_secs(6));
        assert_eq!(limits(&big).header, LIMITS.header);
        let small = cfg(
            "[pool]\npeers = [\"http://10.0.0.1:8080\"]\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        );
        assert_eq!(limits(&small).idle, LIMITS.idle);
    }
}
