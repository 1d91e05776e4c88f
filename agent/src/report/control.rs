//! The root-only control socket (drain, maint, resume) and the admin state it persists in
//! `state_dir/admin.json`, so a drained node stays drained across agent restarts.
//!
//! Protocol: one JSON request line, one JSON reply line, then close.

use crate::health::{Admin, AdminState, Health};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Drain { reason: Option<String> },
    Maint { reason: Option<String> },
    Resume,
    Status,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default)]
    pub admin: Option<AdminState>,
    #[serde(default)]
    pub error: Option<String>,
    /// With `status`: the node's whole `/status` document, for root on this host (the
    /// Nagios plugin run as root needs no `[report] allow` entry for the node itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::wire::status::StatusDoc>,
}

pub fn admin_path(state_dir: &Path) -> PathBuf {
    state_dir.join("admin.json")
}

/// The persisted admin state. A missing file means ready (no admin ever drained the
/// node). A file that exists but cannot be read or parsed fails closed: the node starts in
/// maintenance, so a node an admin took out never rejoins the pool by accident. The admin
/// puts it back with `lvs-node resume` once the file is checked.
pub fn load_admin(state_dir: &Path) -> AdminState {
    let p = admin_path(state_dir);
    let error = match std::fs::read(&p) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(a) => return a,
            Err(e) => e.to_string(),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return AdminState::default(),
        Err(e) => e.to_string(),
    };
    tracing::error!(
        file = %p.display(),
        error = %error,
        "UNREADABLE ADMIN STATE: the node stays in maintenance (weight 0) until an admin runs \
         `lvs-node resume` (or `lvs-node drain`) after checking the file"
    );
    AdminState {
        admin: Admin::Maint,
        reason: Some(format!("{} unreadable: {error}", p.display())),
        since: 0,
    }
}

pub fn save_admin(state_dir: &Path, a: &AdminState) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let data = serde_json::to_vec_pretty(a).map_err(std::io::Error::other)?;
    lvs_shared::atomic::write(&admin_path(state_dir), &data, 0o644)
}

/// Binds the socket with mode 0600 in a directory only root can enter: created 0700 when
/// missing; an existing one must belong to the agent's user (root) and be writable by
/// nobody else, or whoever can write there could replace the socket between two starts
/// and receive the CLI's drain and resume requests, or plant a file under its name.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        check_dir(dir)?;
    }
    // A stale socket from a killed agent would make bind fail: remove it, but only a
    // socket nobody answers on, never a live agent's socket or another kind of file.
    if clear_stale(path)? {
        tracing::info!(socket = %path.display(), "removed a stale control socket");
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Refuses a control socket directory that another user owns or that group or others may
/// write (the sticky bit does not help: the name is free for anyone until the agent binds).
/// The directory is not changed: it may be shared (`/tmp`), and only the admin knows.
pub fn check_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    let refuse = |why: String| {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "daemon.control_socket: its directory {d} {why}, so another user could replace \
                 the socket; fix: `chown {me} {d} && chmod 0700 {d}`, or set \
                 daemon.control_socket to a path in a directory only root may write (the \
                 default /run/lvs-node/control.sock)",
                d = dir.display()
            ),
        ))
    };
    if !md.is_dir() {
        return refuse("is not a directory".into());
    }
    if md.uid() != me {
        return refuse(format!("belongs to uid {}, not to uid {me}", md.uid()));
    }
    if md.mode() & 0o022 != 0 {
        return refuse(format!(
            "is writable by group or others (mode {:04o})",
            md.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Whether an agent answers on the control socket at `path` (connect succeeds).
pub fn agent_listening(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Makes `path` free for a new control socket: absent is fine; a socket nobody listens on
/// is removed (returns true); a live socket (another agent) or a file that is not a socket
/// is an error and stays untouched.
pub fn clear_stale(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; lvs-node will not remove it: check what it is, \
                 move it away, or set daemon.control_socket to another path",
                path.display()
            ),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "another lvs-node agent is listening on {}; stop it first \
                 (`systemctl stop lvs-node`) or give this one another daemon.control_socket",
                path.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path)?;
            Ok(true)
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!(
                "cannot tell whether an agent listens on {}: {e}",
                path.display()
            ),
        )),
    }
}

pub async fn serve(
    listener: UnixListener,
    health: Arc<Health>,
    state_dir: PathBuf,
    cfg: crate::util::ConfigRx,
) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Defence in depth beside the 0600 mode: only root, whatever the socket's mode.
        match s.peer_cred() {
            Ok(c) if c.uid() == 0 => {}
            Ok(c) => {
                tokio::spawn(refuse(s, c.uid()));
                continue;
            }
            Err(_) => continue,
        }
        let health = health.clone();
        let state_dir = state_dir.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), handle(s, &health, &state_dir, &cfg))
                    .await;
        });
    }
}

/// The reply to a peer that is not root. Its request line is read (bounded) and ignored, so
/// that the peer's write does not meet a closed socket before it reads the reply.
async fn refuse(s: UnixStream, uid: u32) {
    tracing::warn!(uid, "control socket: refused a peer that is not root");
    let (r, mut w) = s.into_split();
    let mut line = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(r.take(4096)).read_line(&mut line),
    )
    .await;
    let reply = Reply {
        ok: false,
        admin: None,
        error: Some(format!(
            "only root may use the control socket (this is uid {uid}): run it as root"
        )),
        status: None,
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    let _ = tokio::time::timeout(Duration::from_secs(5), w.write_all(&out)).await;
}

async fn handle(
    s: UnixStream,
    health: &Health,
    state_dir: &Path,
    cfg: &crate::util::ConfigRx,
) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut line = String::new();
    BufReader::new(r.take(4096)).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(e) => Reply {
            ok: false,
            admin: None,
            error: Some(format!("bad request: {e}")),
            status: None,
        },
        Ok(req) => apply(req, health, state_dir, cfg),
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    w.write_all(&out).await
}

fn apply(req: Request, health: &Health, state_dir: &Path, cfg: &crate::util::ConfigRx) -> Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let next = match req {
        Request::Status => {
            let cfg = cfg.borrow().clone();
            return Reply {
                ok: true,
                admin: Some(health.admin()),
                error: None,
                status: Some(crate::health::status::build(&health.snapshot(), &cfg)),
            };
        }
        Request::Drain { reason } => AdminState {
            admin: Admin::Drain,
            reason,
            since: now,
        },
        Request::Maint { reason } => AdminState {
            admin: Admin::Maint,
            reason,
            since: now,
        },
        Request::Resume => AdminState {
            admin: Admin::Ready,
            reason: None,
            since: now,
        },
    };
    // Persist first: a state that would be lost on restart is not acknowledged.
    if let Err(e) = save_admin(state_dir, &next) {
        return Reply {
            ok: false,
            admin: None,
            error: Some(format!(
                "cannot persist the admin state in {}: {e}",
                state_dir.display()
            )),
            status: None,
        };
    }
    tracing::info!(admin = next.admin.as_str(), reason = ?next.reason, "admin state changed");
    health.set_admin(next.clone());
    Reply {
        ok: true,
        admin: Some(next),
        error: None,
        status: None,
    }
}

/// Sends one request to the running agent.
pub async fn request(socket: &Path, req: &Request) -> Result<Reply, String> {
    let io = async {
        let mut s = UnixStream::connect(socket).await?;
        let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        line.push(b'\n');
        s.write_all(&line).await?;
        let mut reply = String::new();
        BufReader::new(s.take(64 * 1024))
            .read_line(&mut reply)
            .await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .map_err(|_| "the agent did not answer within 5s".to_string())?
        .map_err(|e| {
            format!(
                "cannot talk to the agent at {}: {e} (is `lvs-node run` running, and are you root?)",
                socket.display()
            )
        })?;
    serde_json::from_str(&reply).map_err(|e| format!("bad reply from the agent: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Admin;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-control-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_admin_state_is_ready() {
        let d = scratch("missing");
        assert_eq!(load_admin(&d).admin, Admin::Ready);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unreadable_admin_state_fails_closed_to_maint() {
        let d = scratch("garbage");
        std::fs::write(admin_path(&d), b"{\"admin\": \"drai").unwrap();
        let a = load_admin(&d);
        assert_eq!(
            a.admin,
            Admin::Maint,
            "a corrupt admin.json must not put the node back"
        );
        assert!(
            a.reason.as_deref().unwrap_or("").contains("admin.json"),
            "{a:?}"
        );
        // A directory where the file should be: cannot be read at all.
        std::fs::remove_file(admin_path(&d)).unwrap();
        std::fs::create_dir(admin_path(&d)).unwrap();
        assert_eq!(load_admin(&d).admin, Admin::Maint);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_live_socket_is_never_taken_over() {
        let d = scratch("live");
        let sock = d.join("control.sock");
        let first = bind(&sock).unwrap();
        let e = bind(&sock).expect_err("a second agent must refuse");
        assert!(e.to_string().contains("another lvs-node agent"), "{e}");
        // The first agent still answers on its socket.
        let c = tokio::net::UnixStream::connect(&sock).await;
        assert!(c.is_ok(), "the first agent's socket was unlinked");
        assert!(first.accept().await.is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_other_files_are_refused() {
        let d = scratch("stale");
        let sock = d.join("control.sock");
        // A socket file nobody listens on (an agent killed with -9).
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(sock.exists());
        let _l = bind(&sock).expect("a stale socket is replaced");
        drop(_l);
        std::fs::remove_file(&sock).unwrap();
        std::fs::write(&sock, b"precious").unwrap();
        let e = bind(&sock).expect_err("a regular file is not ours to remove");
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&sock).unwrap(), b"precious");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
