//! The HTTP endpoint: `GET /health` (200 up / 503 otherwise, one stable line), `/status`
//! (JSON), `/metrics` (Prometheus). Read-only; hyper bounds the request head; the gate bounds
//! connections and times out slow and idle clients.
//!
//! `/health` and `/metrics` are public (states, numbers and configured names only).
//! `/status` carries free text (check output such as a GridFTP banner or a plugin's line,
//! the admin's drain reason), so only addresses in `report.allow` get it; so does `/pool`,
//! the HTML page of every node's /status (see `pool_page`).

use super::gate::{ConnLimits, Gate, Role};
use crate::health::Health;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use lvs_shared::config::NodeConfig;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The running config, for the parts of /status that come from it (addresses, VIPs).
pub type ConfigRx = watch::Receiver<Arc<NodeConfig>>;

/// Directors send one request per check; nobody needs to hold a slot for longer.
pub const LIMITS: ConnLimits = ConnLimits {
    header: Duration::from_secs(5),
    idle: Duration::from_secs(3),
    lifetime: Duration::from_secs(60),
};

/// What `/pool` shows: the pool poller's latest round and its history. Both outlive poller
/// restarts; without `[pool] peers` the view stays empty and the page shows this node only.
#[derive(Clone)]
pub struct PoolFeed {
    pub view: crate::pool::PoolRx,
    pub history: crate::pool::history::SharedHistory,
}

pub async fn serve(
    listener: Arc<TcpListener>,
    health: Arc<Health>,
    gate: Gate,
    cfg: ConfigRx,
    pool: PoolFeed,
) {
    loop {
        let (stream, permit) = gate.accept(&listener).await;
        let health = health.clone();
        let role = permit.role;
        let cfg = cfg.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let h = health.clone();
                let c = cfg.borrow().clone();
                let p = pool.clone();
                async move { Ok::<_, Infallible>(respond(&req, &h, role, &c, &p)) }
            });
            super::gate::serve_http(stream, LIMITS, svc).await;
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

pub fn respond(
    req: &Request<Incoming>,
    health: &Health,
    role: Role,
    cfg: &NodeConfig,
    pool: &PoolFeed,
) -> Response<Full<Bytes>> {
    route(req.method(), req.uri().path(), health, role, cfg, pool)
}

pub fn route(
    method: &Method,
    path: &str,
    health: &Health,
    role: Role,
    cfg: &NodeConfig,
    pool: &PoolFeed,
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
                b"/status is for the addresses in report.allow (it shows check output and the admin's reason); /health and /metrics are public\n",
            ),
        ),
        "/status" => {
            let doc = super::status::StatusDoc::build(&snap, cfg);
            let body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            text(StatusCode::OK, "application/json", body.into())
        }
        "/pool" if role != Role::Director => text(
            StatusCode::FORBIDDEN,
            "text/plain",
            Bytes::from_static(
                b"/pool is for the addresses in report.allow (it shows the nodes' check output and reasons); /health and /metrics are public\n",
            ),
        ),
        "/pool" => {
            let body = pool_page(&snap, cfg, pool);
            text(StatusCode::OK, "text/html; charset=utf-8", body.into())
        }
        // prometheus-client writes OpenMetrics (`info` type, `# EOF`): served as
        // text/plain 0.0.4, Prometheus rejects the whole scrape (invalid metric type "info").
        "/metrics" => text(
            StatusCode::OK,
            super::metrics::CONTENT_TYPE,
            super::metrics::render(&snap).into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found: GET /health, /status, /pool, /metrics\n"),
        ),
    }
}

/// The `/pool` page from the poller's latest round; without a poller (no `[pool] peers`),
/// this node alone.
fn pool_page(snap: &crate::health::Snapshot, cfg: &NodeConfig, pool: &PoolFeed) -> String {
    let now = std::time::SystemTime::now();
    let polled = pool.view.borrow().clone();
    let own;
    let mut view: &crate::pool::PoolView = &polled;
    let note = if cfg.daemon.pool.peers.is_empty() {
        own = crate::pool::PoolView {
            peers: vec![crate::pool::PeerView {
                url: crate::pool::self_url(cfg).unwrap_or_default(),
                is_self: true,
                status: Some(super::status::StatusDoc::build(snap, cfg)),
                error: None,
                fetched_at: now,
            }],
            max_age: Duration::from_secs(1),
        };
        view = &own;
        Some("No [pool] peers in this node's config: only this node is shown. List every node's report endpoint in [pool] peers.")
    } else if view.peers.is_empty() {
        Some("The first poll of the pool has not finished yet.")
    } else {
        None
    };
    let me = super::status::node_info(cfg).hostname;
    // Reload about as often as the pool is polled, not faster than every 5 s.
    let refresh = cfg
        .daemon
        .pool
        .interval
        .clamp(Duration::from_secs(5), Duration::from_secs(60));
    // A copy, so the poller's next `record` never waits for a page being rendered (up to
    // 10 MB for 256 peers); the copy is bounded by the history's own limits.
    let history = pool
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    super::pool_page::render(view, &history, &me, refresh, note, now)
}
