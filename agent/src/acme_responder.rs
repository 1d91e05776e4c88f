//! HTTP-01 responder for a shared webroot: serves `/.well-known/acme-challenge/<token>` and
//! nothing else, so a site needs no httpd only for Let's Encrypt. Every node serves the same
//! (NFS) directory, so whichever node the director picks for a validation fetch answers.
//!
//! Hardening, because this listens on the VIP's port 80 for the whole internet: read-only,
//! token-shaped names only (no path tricks), regular files only, small bounded replies,
//! a header read timeout and a cap on the lifetime and number of connections.

use crate::cli::ServeChallengesArgs;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const PREFIX: &str = "/.well-known/acme-challenge/";
/// A key authorization is token + '.' + 43-char thumbprint; 4 KiB is plenty.
const MAX_FILE: u64 = 4096;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const CONN_LIFETIME: Duration = Duration::from_secs(30);
const MAX_CONNS: usize = 256;

/// True for names ACME servers use as tokens (base64url, RFC 8555 8.3).
pub fn token_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Serves the webroot's challenges on every listener until an error stops one of them.
/// All addresses are bound before anything is served, so a bad address fails at once.
pub async fn serve(webroot: PathBuf, listeners: Vec<SocketAddr>) -> std::io::Result<()> {
    if listeners.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no listen address",
        ));
    }
    let mut bound = Vec::new();
    for a in &listeners {
        let l = TcpListener::bind(a).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {a}: {e} (is the address local, e.g. the VIP on lo?)"),
            )
        })?;
        bound.push(l);
    }
    let root = Arc::new(webroot.join(".well-known/acme-challenge"));
    let slots = Arc::new(Semaphore::new(MAX_CONNS));
    let mut tasks = tokio::task::JoinSet::new();
    for l in bound {
        tasks.spawn(accept_loop(l, root.clone(), slots.clone()));
    }
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(std::io::Error::other(e)),
        None => Ok(()),
    }
}

async fn accept_loop(
    l: TcpListener,
    root: Arc<PathBuf>,
    slots: Arc<Semaphore>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = match l.accept().await {
            Ok(s) => s,
            // Out of fds and the like: back off instead of spinning or dying.
            Err(e) => {
                tracing::warn!("acme responder accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream); // over capacity: shed load rather than queue
            continue;
        };
        let root = root.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let root = root.clone();
                async move { Ok::<_, Infallible>(respond(&root, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(8192)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONN_LIFETIME, conn).await;
            drop(permit);
        });
    }
}

fn reply(status: StatusCode, body: Bytes, head: bool) -> Response<Full<Bytes>> {
    let len = body.len();
    let mut r = Response::new(Full::new(if head { Bytes::new() } else { body }));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, "text/plain".parse().unwrap());
    h.insert(hyper::header::CONTENT_LENGTH, len.into());
    r
}

fn not_found(head: bool) -> Response<Full<Bytes>> {
    reply(
        StatusCode::NOT_FOUND,
        Bytes::from_static(b"not found\n"),
        head,
    )
}

async fn respond(root: &Path, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return not_found(false);
    }
    let Some(token) = req.uri().path().strip_prefix(PREFIX) else {
        return not_found(head);
    };
    if !token_shaped(token) {
        return not_found(head);
    }
    match read_token(&root.join(token)).await {
        Some(body) => reply(StatusCode::OK, body, head),
        None => not_found(head),
    }
}

/// Reads a regular file (not a symlink or device) of bounded size.
async fn read_token(path: &Path) -> Option<Bytes> {
    let md = tokio::fs::symlink_metadata(path).await.ok()?;
    if !md.is_file() || md.len() > MAX_FILE {
        return None;
    }
    let data = tokio::fs::read(path).await.ok()?;
    if data.len() as u64 > MAX_FILE {
        return None;
    }
    Some(Bytes::from(data))
}

/// `lvs-node serve-challenges --webroot DIR --listen ADDR...`
pub async fn standalone(args: ServeChallengesArgs) -> u8 {
    if !args.webroot.is_dir() {
        eprintln!(
            "error: --webroot {}: not a directory\n  fix: pass the shared webroot that `lvs-cert acme --webroot` writes to",
            args.webroot.display()
        );
        return crate::cli::EXIT_USAGE;
    }
    let addrs: Vec<String> = args.listen.iter().map(|a| a.to_string()).collect();
    eprintln!(
        "serving {}/.well-known/acme-challenge/ on {}",
        args.webroot.display(),
        addrs.join(", ")
    );
    match serve(args.webroot, args.listen).await {
        Ok(()) => crate::cli::EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            crate::cli::EXIT_FAIL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        assert!(token_shaped("abc-DEF_123"));
        for bad in ["", "..", "a/b", "a.b", "%2e%2e", &"a".repeat(257)] {
            assert!(!token_shaped(bad), "{bad:?}");
        }
    }

    async fn get(addr: SocketAddr, req: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_only_tokens() {
        // No tempfile dev-dependency in the agent: a unique dir under /tmp, removed at the end.
        let d = std::env::temp_dir().join(format!("lvs-resp-{}", std::process::id()));
        let ch = d.join(".well-known/acme-challenge");
        std::fs::create_dir_all(&ch).unwrap();
        std::fs::write(ch.join("tok_1"), "tok_1.thumb").unwrap();
        std::fs::write(d.join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(d.join("secret"), ch.join("link")).unwrap();
        // Find a free port, then serve on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let root = d.clone();
        tokio::spawn(serve(root, vec![port]));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let c = "Connection: close\r\n\r\n";
        let ok = get(
            port,
            &format!("GET {PREFIX}tok_1 HTTP/1.1\r\nHost: x\r\n{c}"),
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("tok_1.thumb"), "{ok}");
        let head = get(
            port,
            &format!("HEAD {PREFIX}tok_1 HTTP/1.1\r\nHost: x\r\n{c}"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        for path in [
            format!("{PREFIX}link"),
            format!("{PREFIX}..%2fsecret"),
            format!("{PREFIX}missing"),
            "/secret".into(),
            "/".into(),
        ] {
            let r = get(port, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{c}")).await;
            assert!(r.starts_with("HTTP/1.1 404"), "{path}: {r}");
        }
        let post = get(
            port,
            &format!("POST {PREFIX}tok_1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{c}"),
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 404"), "{post}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
