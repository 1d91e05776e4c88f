//! The agent's file descriptor budget. Every connection slot of every listener is one
//! descriptor; if the slots add up to more than `RLIMIT_NOFILE`, a client holding the
//! public slots (the redirect listeners on the VIP, say) makes `accept` fail with EMFILE
//! for everyone, the directors' reserved `/health` slots included. So the agent raises its
//! soft limit at start to cover the sum (never above the hard limit), and says so when it
//! cannot: the unit's `LimitNOFILE=` (systemd/lvs-node.service) covers the default budget.

use lvs_shared::config::NodeConfig;

/// Connections one `[[redirect]]` listener serves at once (`edge/redirect`).
pub const REDIRECT_SLOTS: usize = 1024;
/// Connections the ACME responder serves at once (`edge/acme.rs`).
pub const ACME_SLOTS: usize = 256;
/// The ACME responder's reader threads, each with a directory and a file open.
pub const ACME_READERS: usize = 8;

/// Descriptors the agent holds besides connection slots: listening sockets, the runtime's
/// epoll and wakers, netlink sockets, log files, the state directory's lock.
const BASE: u64 = 128;
/// Per check at once: a socket, or a child's three pipes and a pidfd.
const PER_CHECK: u64 = 4;
/// The control socket's connections: root only, each cut after 5 s; a nominal share.
const CONTROL: u64 = 64;
/// Per BFD director (a socket each way) and per pool peer (one read at a time).
const PER_PEER: u64 = 2;

/// What every listener and task of `cfg` may hold at once, with the itemised parts for
/// the log.
pub fn budget(cfg: &NodeConfig) -> (u64, String) {
    let rep = &cfg.daemon.report;
    let report = if rep.http.is_some() || rep.http6.is_some() {
        rep.max_connections as u64
    } else {
        0
    };
    let agent_check = if rep.agent_check.is_some() || rep.agent_check6.is_some() {
        rep.max_connections as u64
    } else {
        0
    };
    let redirect = cfg.redirects.len() as u64 * REDIRECT_SLOTS as u64;
    let acme = if cfg.acme.is_some() {
        (ACME_SLOTS + 2 * ACME_READERS) as u64
    } else {
        0
    };
    let checks = cfg.daemon.checks.len() as u64 * PER_CHECK;
    let peers = cfg.bfd.as_ref().map_or(0, |b| b.directors.len()) as u64 * PER_PEER
        + cfg.daemon.pool.peers.len() as u64 * PER_PEER;
    let total = BASE + report + agent_check + redirect + acme + CONTROL + checks + peers;
    let parts = format!(
        "report {report} + agent-check {agent_check} + redirect {redirect} + acme {acme} + \
         control {CONTROL} + checks {checks} + peers {peers} + base {BASE}"
    );
    (total, parts)
}

/// Raises the soft `RLIMIT_NOFILE` to the budget of `cfg` (up to the hard limit). Returns
/// the soft limit in force afterwards; logs a warning with the fix when it stays below.
pub fn raise_for(cfg: &NodeConfig) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (need, parts) = budget(cfg);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft >= need {
        tracing::debug!(soft, need, %parts, "file descriptor limit covers the listeners");
        return soft;
    }
    let want = need.min(hard);
    let now = match setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
        Ok(()) => want,
        Err(e) => {
            tracing::debug!(error = %e, "cannot raise RLIMIT_NOFILE");
            soft
        }
    };
    if now < need {
        tracing::warn!(
            limit = now,
            need,
            %parts,
            "the file descriptor limit is below what the listeners may hold: a client holding \
             the public slots can make the directors' /health fail (EMFILE); set \
             LimitNOFILE={need} or more in the unit (`systemctl edit lvs-node`), or lower \
             report.max_connections"
        );
    } else {
        tracing::info!(from = soft, to = now, %parts, "raised the file descriptor limit");
    }
    now
}
