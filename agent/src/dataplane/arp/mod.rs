//! ARP suppression backends, one file per method (netavark's firewall-driver layout).
//! Each turns the IPv4 VIPs into suppression items; `plan` orders them around the VIPs.

pub mod arptables;
pub mod nftables;
pub mod sysctl;

use super::model::Item;
use lvs_shared::config::ArpMethod;
use std::net::Ipv4Addr;

pub trait ArpBackend {
    /// The external program this method needs; checked before anything changes.
    fn tool(&self) -> Option<&'static str>;
    /// Whether the method needs the node's real IPv4 address.
    fn needs_real_ip(&self) -> bool;
    /// The suppression items for these IPv4 VIPs (empty when there are none).
    fn desired(&self, vips: &[Ipv4Addr], nic: &str, rip: Option<Ipv4Addr>) -> Vec<Item>;
}

pub fn backend(method: ArpMethod) -> &'static dyn ArpBackend {
    match method {
        ArpMethod::Sysctl => &sysctl::Sysctl,
        ArpMethod::Arptables => &arptables::Arptables,
        ArpMethod::Nftables => &nftables::Nftables,
    }
}

/// How long one external tool (`nft`, `arptables`) may run. They answer in milliseconds; a
/// hung one is killed (with its process group) and the step fails with this named.
pub const TOOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a tool, feeding `stdin`; returns stdout or an error with its stderr. Bounded by
/// [`TOOL_TIMEOUT`]: the tool runs in its own process group, killed whole on timeout.
pub fn run_tool(
    prog: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, super::ApplyError> {
    run_tool_for(prog, args, stdin, TOOL_TIMEOUT)
}

fn run_tool_for(
    prog: &str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: std::time::Duration,
) -> Result<String, super::ApplyError> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new(prog)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| super::ApplyError(format!("run {prog}: {e}")))?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let input = stdin.map(str::to_owned);
    let name = prog.to_owned();
    // Feeding stdin and collecting the output block: do it on a helper thread and wait for
    // it with a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = (|| {
            if let Some(input) = input {
                let mut w = child.stdin.take().expect("piped stdin");
                w.write_all(input.as_bytes())
                    .map_err(|e| super::ApplyError(format!("write to {name}: {e}")))?;
            }
            child
                .wait_with_output()
                .map_err(|e| super::ApplyError(format!("wait for {name}: {e}")))
        })();
        let _ = tx.send(r);
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(r) => r?,
        Err(_) => {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            // The helper thread reaps the child once the group is gone.
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
            return Err(super::ApplyError(format!(
                "`{prog} {}` did not finish within {}s and was killed",
                args.join(" "),
                timeout.as_secs()
            )));
        }
    };
    if !out.status.success() {
        return Err(super::ApplyError(format!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Finds a program in PATH, where `run_tool` will look for it too.
pub fn find_tool(prog: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| std::path::Path::new(d).join(prog))
        .find(|p| p.is_file());
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_hung_tool_is_killed_with_its_group() {
        let t = Instant::now();
        let e = run_tool_for(
            "/bin/sh",
            &["-c", "sleep 100 & sleep 100"],
            Some("input"),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(e.0.contains("did not finish within"), "{}", e.0);
        assert_eq!(
            run_tool("/bin/sh", &["-c", "cat; echo ok"], Some("in ")).unwrap(),
            "in ok\n"
        );
    }
}
