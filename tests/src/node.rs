//! Running `lvs-node` inside a lab host, and snapshots of the host state it may touch.

use crate::dr::Host;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A per-lab scratch directory, removed when dropped.
pub struct Workdir(pub PathBuf);

impl Workdir {
    pub fn new(prefix: &str) -> Workdir {
        let p = std::env::temp_dir().join(prefix);
        std::fs::create_dir_all(&p).unwrap();
        Workdir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a node config for `host` (state_dir under the workdir) and returns its path.
pub fn write_config(work: &Workdir, host: &Host, name: &str, body: &str) -> PathBuf {
    let state = work.path().join(format!("{name}-state"));
    let text = format!(
        "interface = \"eth0\"\nstate_dir = \"{}\"\n{body}",
        state.display()
    );
    let p = work.path().join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    let _ = host;
    p
}

/// Runs `lvs-node --config CFG ARGS` in the host's namespace.
pub fn lvs_node(host: &Host, cfg: &Path, args: &str) -> Output {
    lvs_node_env(host, cfg, args, "")
}

pub fn lvs_node_env(host: &Host, cfg: &Path, args: &str, env: &str) -> Output {
    host.ns.run(&format!(
        "{env} {} --config {} {args}",
        crate::bins::lvs_node().display(),
        cfg.display()
    ))
}

/// Asserts success and returns stdout.
pub fn lvs_node_ok(host: &Host, cfg: &Path, args: &str) -> String {
    let out = lvs_node(host, cfg, args);
    assert!(
        out.status.success(),
        "lvs-node {args} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything `lvs-node` may change on a host: addresses, ARP sysctls, arptables rules and
/// the whole nftables ruleset. A tool that fails fails the snapshot (no empty section).
pub fn snapshot(host: &Host) -> String {
    host.ns.ok(
        "ip -o addr show | sed 's/ valid_lft.*//'; \
         for f in /proc/sys/net/ipv4/conf/*/arp_ignore /proc/sys/net/ipv4/conf/*/arp_announce; do echo \"$f=$(cat $f)\"; done; \
         echo '--- arptables'; a=$(arptables-save) || { echo 'arptables-save failed' >&2; exit 1; }; \
         printf '%s\\n' \"$a\" | sed '/^#/d'; \
         echo '--- nft'; nft list ruleset",
    )
}
