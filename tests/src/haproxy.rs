//! A real HAProxy in a lab namespace with agent-checks, read through its stats socket.

use crate::netns::{wait_for, Netns};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Haproxy {
    pub pid: u32,
    pub socket: PathBuf,
}

/// One backend server: name, address:port, agent address and port.
pub struct Server {
    pub name: String,
    pub addr: String,
    pub agent_addr: String,
    pub agent_port: u16,
}

impl Haproxy {
    /// Starts `haproxy -db` (foreground) with one TCP listener and `servers` under agent-check.
    pub fn start(ns: &Netns, dir: &Path, servers: &[Server]) -> Haproxy {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("stats.sock");
        let mut cfg = format!(
            "global\n  stats socket {} mode 600 level admin\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
             listen gridftp\n  bind 127.0.0.1:12811\n",
            socket.display()
        );
        for s in servers {
            cfg.push_str(&format!(
                "  server {} {} weight 100 check inter 500ms agent-check agent-addr {} agent-port {} agent-inter 300ms\n",
                s.name, s.addr, s.agent_addr, s.agent_port
            ));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let pid = ns.spawn_logged(
            &format!("haproxy -db -f {}", path.display()),
            &dir.join("haproxy.log"),
        );
        let h = Haproxy { pid, socket };
        let ok = wait_for(Duration::from_secs(10), || {
            h.try_cmd(ns, "show info")
                .filter(|s| s.contains("Name: HAProxy"))
        });
        assert!(
            ok.is_some(),
            "haproxy did not start: {}",
            std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default()
        );
        h
    }

    fn try_cmd(&self, ns: &Netns, cmd: &str) -> Option<String> {
        let out = ns.run(&format!(
            "echo '{cmd}' | socat -t 2 - UNIX-CONNECT:{}",
            self.socket.display()
        ));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// (status, weight) of `server` from `show stat`, e.g. ("UP", 75), ("DRAIN", 0), ("MAINT", 0).
    pub fn server(&self, ns: &Netns, server: &str) -> Option<(String, u32)> {
        let csv = self.try_cmd(ns, "show stat")?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = |n: &str| header.iter().position(|h| *h == n);
        let (sv, st, w) = (col("svname")?, col("status")?, col("weight")?);
        lines.find_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(sv) == Some(&server)).then(|| {
                (
                    f.get(st).unwrap_or(&"").to_string(),
                    f.get(w).and_then(|w| w.parse().ok()).unwrap_or(0),
                )
            })
        })
    }

    /// Waits until `server`'s status starts with `status` (and has `weight`, if given).
    pub fn wait_server(
        &self,
        ns: &Netns,
        server: &str,
        status: &str,
        weight: Option<u32>,
        timeout: Duration,
    ) -> Result<(String, u32), String> {
        let mut last = None;
        let r = wait_for(timeout, || {
            let s = self.server(ns, server);
            last = s.clone();
            s.filter(|(st, w)| st.starts_with(status) && weight.is_none_or(|x| x == *w))
        });
        r.ok_or_else(|| format!("haproxy {server}: want {status} {weight:?}, last seen {last:?}"))
    }
}
