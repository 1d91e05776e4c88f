//! `command`: a Nagios-style plugin. Exit 0 OK and 1 WARNING count as up; 2 CRITICAL and
//! anything else (3 UNKNOWN, signals) count as down. The first output line is the detail.

use super::{Check, CheckResult};
use std::process::Stdio;
use tokio::io::AsyncReadExt;

pub struct Command {
    pub argv: Vec<String>,
}

impl Check for Command {
    async fn run(&self) -> CheckResult {
        let mut child = tokio::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // The runner's timeout drops this future: the plugin must die with it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.argv[0]))?;
        let mut out = Vec::new();
        if let Some(so) = child.stdout.take() {
            // Bounded: a chatty plugin cannot grow the agent.
            let _ = so.take(4096).read_to_end(&mut out).await;
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out);
        let line = text.lines().next().unwrap_or("").trim().to_string();
        match status.code() {
            Some(0) => Ok(if line.is_empty() { "OK".into() } else { line }),
            Some(1) => Ok(format!("WARNING {line}")),
            Some(2) => Err(format!("CRITICAL {line}")),
            Some(c) => Err(format!("exit {c} {line}")),
            None => Err("killed by a signal".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(s: &str) -> Command {
        Command {
            argv: vec!["/bin/sh".into(), "-c".into(), s.into()],
        }
    }

    #[tokio::test]
    async fn nagios_codes() {
        assert_eq!(sh("echo fine; exit 0").run().await.unwrap(), "fine");
        assert!(sh("echo meh; exit 1").run().await.is_ok());
        assert_eq!(
            sh("echo bad; exit 2").run().await.unwrap_err(),
            "CRITICAL bad"
        );
        assert!(sh("exit 3").run().await.is_err());
    }
}
