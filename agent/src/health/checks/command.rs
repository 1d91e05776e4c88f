//! `command`: a Nagios-style plugin. Exit 0 OK and 1 WARNING count as up; 2 CRITICAL and
//! anything else (3 UNKNOWN, signals) count as down. The first output line is the detail.
//!
//! The agent runs as root and probes every few seconds, so a plugin must not leave anything
//! behind: it runs in its own process group, which is killed when the probe ends or times
//! out (a plugin's background children included); a probe whose group is still alive (stuck
//! in the kernel) blocks the next one instead of piling up; stdout and stderr are drained
//! concurrently and only the first 4 KiB kept; the environment is clean (no NOTIFY_SOCKET or
//! WATCHDOG_* of the agent's own service); `user` drops root.

use super::{Check, CheckResult};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Output kept from a plugin; the rest is read and thrown away.
const KEEP: usize = 4096;
/// The PATH a plugin sees (the agent's own environment is not passed on).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Command {
    pub argv: Vec<String>,
    /// Run as this user instead of root.
    pub user: Option<String>,
    /// The process group of the last probe, until it is known to be gone.
    pub last_group: Arc<Mutex<Option<i32>>>,
}

impl Command {
    pub fn new(argv: Vec<String>, user: Option<String>) -> Command {
        Command {
            argv,
            user,
            last_group: Arc::default(),
        }
    }
}

/// Kills a whole process group when dropped: at the end of a probe, and when the runner's
/// timeout drops the probe.
struct GroupKill(i32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Reads to EOF, keeping at most `KEEP` bytes, so a chatty plugin never blocks on a full pipe
/// nor grows the agent.
async fn drain(r: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut r) = r else { return kept };
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

impl Check for Command {
    async fn run(&self) -> CheckResult {
        let last = *self.last_group.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = last {
            // A group killed at the last timeout may take a moment to be reaped.
            for _ in 0..10 {
                if !group_alive(g) {
                    break;
                }
                let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            if group_alive(g) {
                return Err(format!(
                    "previous probe still running (process group {g} does not die)"
                ));
            }
            *self.last_group.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .env_clear()
            .env("PATH", PATH)
            .env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // The runner's timeout drops this future: the plugin must die with it.
            .kill_on_drop(true);
        if let Some(u) = &self.user {
            let user = nix::unistd::User::from_name(u)
                .ok()
                .flatten()
                .ok_or_else(|| format!("no user `{u}`"))?;
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            if let Some(home) = user.dir.to_str() {
                cmd.env("HOME", home);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.argv[0]))?;
        let pgid = child
            .id()
            .map(|p| p as i32)
            .ok_or("plugin exited at once")?;
        *self.last_group.lock().unwrap_or_else(|e| e.into_inner()) = Some(pgid);
        let _kill = GroupKill(pgid);
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let (status, out, _) = tokio::join!(
            async {
                let st = child.wait().await;
                // The plugin is done: whatever it left running goes too, which also closes
                // the pipes the drains wait on.
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                st
            },
            drain(out),
            drain(err),
        );
        let status = status.map_err(|e| e.to_string())?;
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
        Command::new(vec!["/bin/sh".into(), "-c".into(), s.into()], None)
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

    #[tokio::test]
    async fn clean_environment_and_chatty_output() {
        std::env::set_var("NOTIFY_SOCKET", "/run/x");
        let r = sh("echo \"n=${NOTIFY_SOCKET:-none} w=${WATCHDOG_USEC:-none}\"")
            .run()
            .await;
        assert_eq!(r.unwrap(), "n=none w=none");
        // 1 MiB on stdout and stderr each: drained, not blocking, first line kept.
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            sh("echo first; head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2").run(),
        )
        .await
        .expect("a chatty plugin blocked the probe");
        assert_eq!(r.unwrap(), "first");
    }

    #[tokio::test]
    async fn runs_as_user() {
        let c = Command::new(
            vec!["/bin/sh".into(), "-c".into(), "id -un".into()],
            Some("nobody".into()),
        );
        assert_eq!(c.run().await.unwrap(), "nobody");
    }

    /// PIDs whose process group is `pgid`.
    fn members(pgid: i32) -> Vec<i32> {
        let mut v = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...: fields after the last ')'.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            if f[0] != "Z" && f[2].parse::<i32>() == Ok(pgid) {
                v.push(pid);
            }
        }
        v
    }

    #[tokio::test]
    async fn timeout_and_exit_leave_no_process_behind() {
        // Killed by the runner's timeout, with a background child.
        let c = sh("sleep 100 & sleep 100");
        let r = tokio::time::timeout(std::time::Duration::from_millis(300), c.run()).await;
        assert!(r.is_err());
        let g = c.last_group.lock().unwrap().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(members(g), Vec::<i32>::new(), "orphans of group {g}");
        // Exits at once but leaves a background child holding stdout.
        let c = sh("sleep 100 & echo done");
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), c.run()).await;
        assert_eq!(r.expect("waited for the background child").unwrap(), "done");
        let g = c.last_group.lock().unwrap().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(members(g), Vec::<i32>::new(), "orphans of group {g}");
    }
}
