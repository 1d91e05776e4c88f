//! HAProxy agent-check responder: on connect, write one line (`up ready 75%`, `drain`,
//! `maint`, `down ready #gridftp: connection refused`) and close. Nothing is read.

use super::{accept_pause, Gate};
use crate::health::Health;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, health: Arc<Health>, gate: Gate) {
    loop {
        let (mut s, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                accept_pause(&e).await;
                continue;
            }
        };
        let Some(permit) = gate.admit(peer.ip()) else {
            continue;
        };
        let line = health.snapshot().agent_line.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                s.write_all(&line).await?;
                s.shutdown().await
            })
            .await;
            drop(permit);
        });
    }
}
