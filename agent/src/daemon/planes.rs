//! The planes of `lvs-node run` and the threads each runs on.
//!
//! - **Director plane**: the runtime `run` was started on (the main thread). It holds the
//!   check schedule, the health state, `/health` and `/status`, the agent-check, the control
//!   socket, the watchdog and the signals. Nothing a client on the VIP sends is handled here.
//! - **BFD**: a runtime with one worker thread of its own. Its transmit timing depends on no
//!   other task: a busy director plane, edge or pool cannot delay a packet.
//! - **Edge**: a runtime with one worker thread for the listeners any client on the internet
//!   reaches (`[[redirect]]` with its TLS handshakes, the ACME responder). Its threads run at
//!   a lower CPU priority (nice [`BACKGROUND_NICE`]), so a flood there yields the CPU to the
//!   director plane and BFD.
//! - **Pool**: the same for the pool: polling and parsing every peer's `/status`, and the
//!   `/pool` page renders (megabytes for a large pool).
//!
//! The data plane loop has its own thread too (see `dataplane_loop`). Sockets are bound in
//! the context of the runtime that serves them, so each plane's I/O is driven by its own
//! reactor.

use std::io;
use tokio::runtime::{Builder, Handle, Runtime};

/// The nice value of the edge's and the pool's threads (0 is the agent's own).
pub const BACKGROUND_NICE: i32 = 10;

/// A runtime of one worker thread, shut down without waiting when dropped (a thread stuck
/// in the kernel on a dead mount must not hold up SIGTERM).
pub struct Plane {
    rt: Option<Runtime>,
    handle: Handle,
}

impl Plane {
    fn start(name: &'static str, nice: i32) -> io::Result<Plane> {
        let rt = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .on_thread_start(move || {
                if nice != 0 {
                    lower_priority(nice);
                }
            })
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        Ok(Plane {
            rt: Some(rt),
            handle,
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `f` (which binds sockets or spawns tasks) in this plane's context: sockets it
    /// creates are driven by this plane's reactor, and `tokio::spawn` lands here.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.handle.enter();
        f()
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Raises the calling thread's nice value to `nice`. Lowering one's own priority needs no
/// privilege; a failure leaves the thread at the agent's priority, which is only slower
/// under load, so it is logged, not fatal.
fn lower_priority(nice: i32) {
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS and a thread id
    // changes only that thread's nice value (Linux threads are schedulable entities).
    let r = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if r != 0 {
        tracing::warn!(
            "cannot lower the priority of thread {:?}: {}",
            std::thread::current().name(),
            io::Error::last_os_error()
        );
    }
}

/// The three planes besides the director plane.
pub struct Planes {
    pub bfd: Plane,
    pub edge: Plane,
    pub pool: Plane,
}

impl Planes {
    pub fn start() -> io::Result<Planes> {
        Ok(Planes {
            bfd: Plane::start("lvs-bfd", 0)?,
            edge: Plane::start("lvs-edge", BACKGROUND_NICE)?,
            pool: Plane::start("lvs-pool", BACKGROUND_NICE)?,
        })
    }
}
