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

/// Runs a tool, feeding `stdin`; returns stdout or an error with its stderr.
pub fn run_tool(
    prog: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, super::ApplyError> {
    use std::io::Write;
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
        .spawn()
        .map_err(|e| super::ApplyError(format!("run {prog}: {e}")))?;
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("piped stdin");
        w.write_all(input.as_bytes())
            .map_err(|e| super::ApplyError(format!("write to {prog}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| super::ApplyError(format!("wait for {prog}: {e}")))?;
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
