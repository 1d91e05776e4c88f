//! `tcp`: the port accepts a connection (what the seeds' TCP_CHECK does, but faster).

use super::{connect, Check, CheckResult};

pub struct Tcp {
    pub target: String,
}

impl Check for Tcp {
    async fn run(&self) -> CheckResult {
        connect(&self.target).await?;
        Ok(format!("connected to {}", self.target))
    }
}
