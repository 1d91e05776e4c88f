//! The self-check: before the CA is told to validate, fetch every token the way the CA
//! will, through the VIP several times (each fetch is a new connection, so the director
//! spreads them over the nodes) and from each node's real IP with the validated name as
//! Host. One node not serving the shared webroot costs a failed authorization at the CA
//! (5 per name per hour at Let's Encrypt); here it costs nothing.
//!
//! Fetches go through the project's one HTTP client (`lvs_shared::http`) with no idle
//! connection pool, so every fetch is a new connection.
//!
//! Run from a real server, the VIP is local, so the VIP fetches reach that node only; the
//! per-node fetches still cover every node. Run from another host to test the director too.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const PARALLEL: usize = 16;

pub struct Challenge {
    pub name: String,
    pub token: String,
    pub key_auth: String,
}

/// Where to fetch: `label` names it in errors ("node n1.example" or "the VIP").
#[derive(Clone)]
pub struct Endpoint {
    pub label: String,
    pub addr: SocketAddr,
}

/// One GET on a fresh connection (the client keeps no idle connections); returns
/// (status, body).
async fn fetch(
    client: &lvs_shared::http::reqwest::Client,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(u16, String)> {
    let url = format!("http://{addr}{path}");
    match lvs_shared::http::get(client, &url, Some(host), 64 * 1024).await {
        Ok(r) => Ok((r.status, r.text())),
        Err(e) if e == "timed out" => bail!("no answer within {}s", FETCH_TIMEOUT.as_secs()),
        Err(e) => bail!("{e}"),
    }
}

/// Fetches everything; on failure the error lists each endpoint that failed and why.
pub async fn run(
    challenges: &[Challenge],
    vip: &Endpoint,
    nodes: &[Endpoint],
    rounds: usize,
) -> Result<()> {
    let mut jobs: Vec<(Endpoint, usize)> = Vec::new();
    for (i, _) in challenges.iter().enumerate() {
        for _ in 0..rounds {
            jobs.push((vip.clone(), i));
        }
        for n in nodes {
            jobs.push((n.clone(), i));
        }
    }
    let total = jobs.len();
    let ch: Arc<Vec<(String, String, String)>> = Arc::new(
        challenges
            .iter()
            .map(|c| (c.name.clone(), c.token.clone(), c.key_auth.clone()))
            .collect(),
    );
    let client = lvs_shared::http::ClientOptions {
        pool: false,
        user_agent: "lvs-cert-selfcheck".into(),
        ..lvs_shared::http::ClientOptions::with_timeout(FETCH_TIMEOUT)
    }
    .build()
    .map_err(anyhow::Error::msg)?;
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut set = tokio::task::JoinSet::new();
    for (ep, i) in jobs {
        let ch = ch.clone();
        let sem = sem.clone();
        let client = client.clone();
        set.spawn(async move {
            let _p = sem.acquire().await;
            let (name, token, ka) = &ch[i];
            let path = format!("/.well-known/acme-challenge/{token}");
            let res = match fetch(&client, ep.addr, name, &path).await {
                Ok((200, body)) if body.trim_end() == ka => Ok(()),
                Ok((200, _)) => {
                    Err("served the wrong content (an old or foreign webroot?)".to_string())
                }
                Ok((code, _)) => Err(format!("HTTP {code}")),
                Err(e) => Err(format!("{e:#}")),
            };
            (ep, name.clone(), res)
        });
    }
    // endpoint label -> (failures, first reason)
    let mut failed: BTreeMap<String, (usize, String)> = BTreeMap::new();
    while let Some(r) = set.join_next().await {
        let (ep, name, res) = r?;
        if let Err(why) = res {
            let e = failed
                .entry(format!("{} ({})", ep.label, ep.addr))
                .or_insert((0, format!("token for {name}: {why}")));
            e.0 += 1;
        }
    }
    if failed.is_empty() {
        tracing::info!("self-check: {total} fetches ok");
        return Ok(());
    }
    let mut msg = String::from("self-check failed, nothing was sent to the CA for validation:\n");
    for (ep, (n, why)) in &failed {
        msg.push_str(&format!("  {ep}: {n} fetch(es) failed, e.g. {why}\n"));
    }
    msg.push_str(
        "  fix: make every node serve the shared webroot on port 80 of its real IP and of the VIP \
         (`lvs-node serve-challenges --webroot DIR --listen VIP:80 --listen REALIP:80`, or [acme] in node.toml)",
    );
    bail!(msg)
}
