//! `report.http`, `report.agent_check` (or `report` when neither is configured): can a
//! director's check reach the agent? Connects to the configured addresses (the real IP)
//! with a short timeout, as keepalived's HTTP_GET (through the project's HTTP client) and
//! HAProxy's agent-check (a plain TCP read) would.

use super::Finding;
use lvs_shared::config::NodeConfig;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const HTTP: &str = "report.http";
pub const AGENT: &str = "report.agent_check";
pub const NONE: &str = "report";
const TIMEOUT: Duration = Duration::from_secs(2);

/// GET /health on the report endpoint: (status, body), or why not.
async fn get_health(addr: SocketAddr) -> Result<(u16, String), String> {
    let opts = lvs_shared::http::ClientOptions {
        pool: false,
        user_agent: "lvs-node-doctor".into(),
        ..lvs_shared::http::ClientOptions::with_timeout(TIMEOUT)
    };
    let client = opts.build()?;
    let url = format!("http://{addr}/health");
    match lvs_shared::http::get(&client, &url, None, 65536).await {
        Ok(r) => Ok((r.status, r.text())),
        Err(e) if e == "timed out" => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
        Err(e) => Err(e),
    }
}

/// The agent closing a connection at once, before any answer (how it refuses a host that
/// is not in report.allow).
fn closed_at_once(why: &str) -> bool {
    why.contains("closed") || why == "connection reset"
}

enum Reply {
    /// Connected and read this (possibly empty: closed at once).
    Data(String),
    Failed(String),
}

async fn exchange(addr: SocketAddr, send: &[u8]) -> (Reply, Option<IpAddr>) {
    let r = tokio::time::timeout(TIMEOUT, async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| crate::health::checks::io_reason(&e))?;
        let local = s.local_addr().ok().map(|a| a.ip());
        if !send.is_empty() {
            // The agent may have closed already (not allowed): read what there is.
            let _ = s.write_all(send).await;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 65536 {
                        break;
                    }
                }
                Err(e) if buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    break
                }
                Err(e) => return Err(crate::health::checks::io_reason(&e)),
            }
        }
        Ok::<_, String>((String::from_utf8_lossy(&buf).into_owned(), local))
    })
    .await;
    match r {
        Ok(Ok((d, local))) => (Reply::Data(d), local),
        Ok(Err(e)) => (Reply::Failed(e), None),
        Err(_) => (
            Reply::Failed(format!("no answer within {}s", TIMEOUT.as_secs())),
            None,
        ),
    }
}

fn allow_text(cfg: &NodeConfig) -> String {
    let a = &cfg.daemon.report.allow;
    if a.is_empty() {
        "report.allow is empty: any host may connect (set it to the directors' addresses)".into()
    } else {
        format!(
            "directors allowed to connect (report.allow): {}",
            a.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn refused_us(cfg: &NodeConfig, local: Option<IpAddr>) -> bool {
    let a = &cfg.daemon.report.allow;
    !a.is_empty() && local.is_some_and(|l| !a.contains(&l))
}

fn not_running(id: &str, addr: SocketAddr, why: String, cfg: &NodeConfig) -> Finding {
    Finding::error(
        id,
        format!("nothing answers on {addr} ({why})"),
        format!(
            "The directors' checks connect here; without an answer they take this node out of \
             rotation (keepalived HTTP_GET, HAProxy agent-check) or never learn its weight.\n{}",
            allow_text(cfg)
        ),
        "is `lvs-node run` running? `systemctl start lvs-node` (or `lvs-node run`); check its log \
         for a bind error on this address",
    )
}

pub async fn findings(cfg: &NodeConfig) -> Vec<Finding> {
    let r = &cfg.daemon.report;
    let mut out = Vec::new();
    if r.http.is_none() && r.agent_check.is_none() {
        out.push(Finding::warn(
            NONE,
            "no report endpoint configured",
            "Directors then see only whether TCP 2811 accepts connections: a node whose GridFTP \
             accepts but fails transfers, or that is being drained, stays in rotation.",
            "add to the node config: [report] http = \"REAL_IP:8080\" (keepalived HTTP_GET) and/or \
             agent_check = \"REAL_IP:8081\" (HAProxy agent-check), allow = [\"DIRECTOR_IP\"]; see docs/daemon.md",
        ));
        return out;
    }
    if let Some(addr) = r.http {
        // Connecting to a local address uses that address as the source, so the agent sees
        // this host as the report endpoint's own IP.
        let local = Some(addr.ip());
        out.push(match get_health(addr).await {
            Err(e) if closed_at_once(&e) && refused_us(cfg, local) => Finding::ok(
                HTTP,
                format!("the agent listens on {addr}"),
                format!(
                    "it closed our connection because this host ({}) is not in report.allow, as \
                     intended.\n{}",
                    addr.ip(),
                    allow_text(cfg)
                ),
            ),
            Err(e) if closed_at_once(&e) => Finding::error(
                HTTP,
                format!("{addr} does not answer like the lvs-node agent"),
                format!("it closed the connection without an answer ({e})"),
                "another program holds this port: stop it or move report.http to a free port",
            ),
            Err(e) => not_running(HTTP, addr, e, cfg),
            Ok((status, body)) => {
                let body = body.trim().to_string();
                match status {
                    200 => Finding::ok(
                        HTTP,
                        format!("GET http://{addr}/health: 200 {body}"),
                        allow_text(cfg),
                    ),
                    503 => Finding::warn(
                        HTTP,
                        format!("GET http://{addr}/health: 503, the agent reports this node down or drained"),
                        format!("{body}\n{}", allow_text(cfg)),
                        "see `lvs-node status` and the failing check named above; `lvs-node resume` if it was drained",
                    ),
                    other => Finding::error(
                        HTTP,
                        format!("{addr} does not answer like the lvs-node agent"),
                        format!("reply: HTTP {other} {:?}", body.lines().next().unwrap_or("")),
                        "another program holds this port: stop it or move report.http to a free port",
                    ),
                }
            }
        });
    }
    if let Some(addr) = r.agent_check {
        out.push(match exchange(addr, b"").await {
            (Reply::Failed(e), _) => not_running(AGENT, addr, e, cfg),
            (Reply::Data(d), local) if d.is_empty() && refused_us(cfg, local) => Finding::ok(
                AGENT,
                format!("the agent-check responder listens on {addr}"),
                format!(
                    "it closed our connection because this host is not in report.allow, as intended.\n{}",
                    allow_text(cfg)
                ),
            ),
            (Reply::Data(d), _) => {
                let line = d.lines().next().unwrap_or("").trim().to_string();
                let first = line.split([' ', ',']).next().unwrap_or("");
                let admin_down = line
                    .split([' ', ','])
                    .any(|w| w == "drain" || w == "maint");
                if line.is_empty() {
                    Finding::error(
                        AGENT,
                        format!("{addr} closed without an agent line"),
                        allow_text(cfg),
                        "is this host's address missing from report.allow? is another program on the port?",
                    )
                } else if first == "up" && !admin_down {
                    Finding::ok(AGENT, format!("agent line from {addr}: {line}"), allow_text(cfg))
                } else {
                    Finding::warn(
                        AGENT,
                        format!("agent line from {addr}: {line} (not in rotation)"),
                        allow_text(cfg),
                        "see `lvs-node status`; `lvs-node resume` if it was drained",
                    )
                }
            }
        });
    }
    out
}
