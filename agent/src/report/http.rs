//! The HTTP endpoint: `GET /health` (200 up / 503 otherwise, one stable line), `/status`
//! (JSON), `/metrics` (Prometheus). Read-only; hyper bounds the request head and times out
//! slow senders; the gate bounds connections.

use super::Gate;
use crate::health::Health;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use lvs_shared::config::NodeConfig;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The running config, for the parts of /status that come from it (addresses, VIPs).
pub type ConfigRx = watch::Receiver<Arc<NodeConfig>>;

/// A client that keeps a connection longer than this is cut (bounded slot use).
const MAX_CONN_LIFETIME: Duration = Duration::from_secs(300);

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, health: Arc<Health>, gate: Gate, cfg: ConfigRx) {
    loop {
        let (stream, permit) = gate.accept(&listener).await;
        let _ = stream.set_nodelay(true);
        let health = health.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let h = health.clone();
                let c = cfg.borrow().clone();
                async move { Ok::<_, Infallible>(respond(&req, &h, &c)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .max_buf_size(8192)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(MAX_CONN_LIFETIME, conn).await;
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
    cfg: &NodeConfig,
) -> Response<Full<Bytes>> {
    route(req.method(), req.uri().path(), health, cfg)
}

pub fn route(
    method: &Method,
    path: &str,
    health: &Health,
    cfg: &NodeConfig,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"read-only: GET /health, /status, /metrics\n"),
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
        "/status" => {
            let doc = super::status::StatusDoc::build(&snap, cfg);
            let body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            text(StatusCode::OK, "application/json", body.into())
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            super::metrics::render(&snap).into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found: GET /health, /status, /metrics\n"),
        ),
    }
}
