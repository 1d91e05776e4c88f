//! Reporting to directors, from cached state only: the HTTP endpoint (`/health`, `/status`,
//! `/metrics`) and the HAProxy agent-check responder. Both bind the real IP (the config
//! refuses a VIP or a wildcard), are read-only, bound connections and time out slow clients.

pub mod agent_check;
pub mod http;
pub mod metrics;
pub mod status;

use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Who may connect and how many at once.
#[derive(Clone)]
pub struct Gate {
    allow: Arc<Vec<IpAddr>>,
    slots: Arc<Semaphore>,
}

impl Gate {
    pub fn new(allow: Vec<IpAddr>, max: usize) -> Gate {
        Gate {
            allow: Arc::new(allow),
            slots: Arc::new(Semaphore::new(max)),
        }
    }

    /// A connection slot for `peer`, or None: not allowed, or at capacity (then the
    /// connection is closed at once instead of queueing memory).
    pub fn admit(&self, peer: IpAddr) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
            p => p,
        };
        if !self.allow.is_empty() && !self.allow.contains(&peer) {
            tracing::debug!(%peer, "refused: not in report.allow");
            return None;
        }
        self.slots.clone().try_acquire_owned().ok()
    }

    /// The next connection this gate admits, with its slot; refused ones are closed.
    pub async fn accept(
        &self,
        listener: &TcpListener,
    ) -> (TcpStream, tokio::sync::OwnedSemaphorePermit) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    accept_pause(&e).await;
                    continue;
                }
            };
            if let Some(permit) = self.admit(peer.ip()) {
                return (stream, permit);
            }
        }
    }
}

/// Accept errors such as EMFILE must not spin the loop.
pub(crate) async fn accept_pause(e: &std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}
