//! HAProxy agent-check responder: on connect, write one line (`up ready 75%`, `drain`,
//! `maint`, `down ready #gridftp: connection refused`) and close. Nothing is read.

use crate::health::Health;
use crate::util::gate::Gate;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

pub async fn serve(listener: Arc<TcpListener>, health: Arc<Health>, gate: Gate) {
    loop {
        let (mut s, permit) = gate.accept(&listener).await;
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
