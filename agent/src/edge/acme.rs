//! HTTP-01 responder for a shared webroot: serves `/.well-known/acme-challenge/<token>` and
//! nothing else, so a site needs no httpd only for Let's Encrypt. Every node serves the same
//! (NFS) directory, so whichever node the director picks for a validation fetch answers.
//!
//! Hardening, because this listens on the VIP's port 80 for the whole internet: read-only,
//! token-shaped names only (no path tricks), resolved below the webroot without following
//! any symlink (a symlinked `.well-known` or `acme-challenge` in a shared webroot must not
//! expose the node's files), regular files only, small bounded replies, and the report
//! listeners' connection limits: per-source cap, idle timeout and lifetime ([`crate::util::gate`]).
//! Files are read off the runtime by at most [`READERS`] threads at once: a webroot on a
//! hung mount holds those few threads, and every request beyond them is answered 503 after
//! waiting at most [`QUEUE_WAIT`] for a reader (after [`READ_TIMEOUT`] for the ones that got
//! one), so a flood of fetches can
//! neither start threads without bound nor hold connections open waiting for one.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::util::gate::{ConnLimits, Gate, Limits};

const PREFIX: &str = "/.well-known/acme-challenge/";
/// A key authorization is token + '.' + 43-char thumbprint; 4 KiB is plenty.
const MAX_FILE: u64 = 4096;
const CONN: ConnLimits = ConnLimits {
    header: Duration::from_secs(5),
    idle: Duration::from_secs(3),
    lifetime: Duration::from_secs(30),
};
/// Counted in the agent's file descriptor budget (`util::fds`).
pub const MAX_CONNS: usize = crate::util::fds::ACME_SLOTS;
/// Reader threads at once. A CA fetches a handful of tokens per validation.
pub const READERS: usize = crate::util::fds::ACME_READERS;
/// The longest a request waits for its file; a reader stuck longer keeps its slot.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request waits for a free reader before it is answered 503.
const QUEUE_WAIT: Duration = Duration::from_millis(500);
/// A CA validates from a few addresses, a few fetches per name at once.
const MAX_PER_SOURCE: usize = 32;

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
    let bound = bind_all(&listeners).await?;
    serve_bound(webroot, bound.into_iter().map(Arc::new).collect()).await
}

/// Binds every address, or none: the first failure is returned with the address named.
pub async fn bind_all(listeners: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    if listeners.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no listen address",
        ));
    }
    let mut bound = Vec::new();
    for a in listeners {
        let l = crate::util::gate::bind(*a).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {a}: {e} (is the address local, e.g. the VIP on lo?)"),
            )
        })?;
        bound.push(l);
    }
    Ok(bound)
}

/// Serves on listeners already bound (the daemon binds them before a reload commits).
pub async fn serve_bound(webroot: PathBuf, bound: Vec<Arc<TcpListener>>) -> std::io::Result<()> {
    let root = Arc::new(webroot);
    let readers = Arc::new(Semaphore::new(READERS));
    let gate = Gate::new(Limits {
        allow: Vec::new(),
        public: true,
        max: MAX_CONNS,
        per_source: MAX_PER_SOURCE,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for l in bound {
        tasks.spawn(accept_loop(l, root.clone(), gate.clone(), readers.clone()));
    }
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(std::io::Error::other(e)),
        None => Ok(()),
    }
}

async fn accept_loop(
    l: Arc<TcpListener>,
    root: Arc<PathBuf>,
    gate: Gate,
    readers: Arc<Semaphore>,
) -> std::io::Result<()> {
    loop {
        let (stream, permit) = gate.accept(&l).await;
        let root = root.clone();
        let readers = readers.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (root, readers) = (root.clone(), readers.clone());
                async move { Ok::<_, Infallible>(respond(&root, &readers, &req).await) }
            });
            crate::util::gate::serve_http(stream, CONN, svc).await;
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

fn busy(head: bool) -> Response<Full<Bytes>> {
    let mut r = reply(
        StatusCode::SERVICE_UNAVAILABLE,
        Bytes::from_static(b"busy, retry later\n"),
        head,
    );
    r.headers_mut()
        .insert(hyper::header::RETRY_AFTER, "5".parse().unwrap());
    r
}

async fn respond(
    root: &Path,
    readers: &Arc<Semaphore>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
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
    // Every reader busy: a burst of fetches (a self-check, the CA's validators) waits a
    // moment for one; a hung webroot holds them all, and then the answer is a 503 within
    // QUEUE_WAIT, with no thread started.
    let Ok(Ok(slot)) = tokio::time::timeout(QUEUE_WAIT, readers.clone().acquire_owned()).await
    else {
        return busy(head);
    };
    let (root, token) = (root.to_path_buf(), token.to_string());
    // A hung NFS webroot stalls one thread, not the runtime nor the agent's exit. The
    // slot goes with the thread and comes back only when the read returns.
    let read = crate::util::blocking::off_runtime(move || {
        let r = read_token(&root, &token);
        drop(slot);
        r
    });
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(Some(body))) => reply(StatusCode::OK, body, head),
        Ok(_) => not_found(head),
        Err(_) => busy(head),
    }
}

/// `.well-known/acme-challenge/<token>` below the webroot, opened without following any
/// symlink in those three components, as a regular file of bounded size.
fn read_token(webroot: &Path, token: &str) -> Option<Bytes> {
    use std::io::Read;
    let dir = nix::fcntl::open(
        webroot,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let fd = open_beneath(&dir, &format!(".well-known/acme-challenge/{token}")).ok()?;
    let file = std::fs::File::from(fd);
    let md = file.metadata().ok()?;
    if !md.is_file() || md.len() > MAX_FILE {
        return None;
    }
    let mut data = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut data).ok()?;
    if data.len() as u64 > MAX_FILE {
        return None;
    }
    Some(Bytes::from(data))
}

/// Opens `rel` for reading below `dir`, refusing symlinks in every component and any escape
/// from `dir`: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or, on kernels before 5.6,
/// one `openat(O_NOFOLLOW)` per component. O_NONBLOCK: a FIFO planted there never blocks.
pub(crate) fn open_beneath(dir: &impl AsFd, rel: &str) -> nix::Result<OwnedFd> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    match nix::fcntl::openat2(dir, rel, how) {
        Err(nix::errno::Errno::ENOSYS) => open_per_component(dir, rel, flags),
        r => r,
    }
}

fn open_per_component(
    dir: &impl AsFd,
    rel: &str,
    last_flags: nix::fcntl::OFlag,
) -> nix::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    let parts: Vec<&str> = rel.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(nix::errno::Errno::EINVAL);
    }
    let mut cur: Option<OwnedFd> = None;
    for (i, p) in parts.iter().enumerate() {
        let flags = if i + 1 == parts.len() {
            last_flags
        } else {
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
        };
        let next = match &cur {
            None => nix::fcntl::openat(dir, *p, flags, nix::sys::stat::Mode::empty())?,
            Some(fd) => nix::fcntl::openat(fd, *p, flags, nix::sys::stat::Mode::empty())?,
        };
        cur = Some(next);
    }
    cur.ok_or(nix::errno::Errno::EINVAL)
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

    #[test]
    fn symlinked_directories_are_not_followed() {
        let d = std::env::temp_dir().join(format!("lvs-resp-ln-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let outside = d.join("outside");
        std::fs::create_dir_all(outside.join("acme-challenge")).unwrap();
        std::fs::write(outside.join("acme-challenge/ssh_host_key"), "SECRET").unwrap();
        std::fs::write(outside.join("ssh_host_key"), "SECRET").unwrap();
        // webroot A: `.well-known` is a symlink; webroot B: `acme-challenge` is one.
        let a = d.join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::os::unix::fs::symlink(&outside, a.join(".well-known")).unwrap();
        let b = d.join("b");
        std::fs::create_dir_all(b.join(".well-known")).unwrap();
        std::os::unix::fs::symlink(&outside, b.join(".well-known/acme-challenge")).unwrap();
        // webroot C: a real token next to a FIFO and a directory.
        let c = d.join("c");
        let ch = c.join(".well-known/acme-challenge");
        std::fs::create_dir_all(ch.join("adir")).unwrap();
        std::fs::write(ch.join("tok"), "tok.x").unwrap();
        nix::unistd::mkfifo(
            &ch.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert_eq!(read_token(&a, "ssh_host_key"), None);
        assert_eq!(read_token(&b, "ssh_host_key"), None);
        assert_eq!(read_token(&c, "tok").as_deref(), Some(&b"tok.x"[..]));
        assert_eq!(read_token(&c, "fifo"), None);
        assert_eq!(read_token(&c, "adir"), None);
        // The fallback for kernels without openat2 refuses the same.
        let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW;
        for (root, rel) in [
            (&a, ".well-known/acme-challenge/ssh_host_key"),
            (&b, ".well-known/acme-challenge/ssh_host_key"),
            (&c, ".well-known/../.well-known/acme-challenge/tok"),
        ] {
            let dir = std::fs::File::open(root).unwrap();
            assert!(open_per_component(&dir, rel, flags).is_err(), "{rel}");
        }
        let dir = std::fs::File::open(&c).unwrap();
        assert!(open_per_component(&dir, ".well-known/acme-challenge/tok", flags).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
