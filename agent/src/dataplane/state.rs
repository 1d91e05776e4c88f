//! The owned-state record in state_dir (`state.json`, 0600) and the lock that serializes
//! `up`, `down` and the daemon's repairs on one host.

use super::model::Owned;
use super::{ApplyError, Failure};
use lvs_shared::ConfigError;
use nix::fcntl::{Flock, FlockArg};
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const FILE: &str = "state.json";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

pub fn load(dir: &Path) -> Result<Owned, Failure> {
    let p = path(dir);
    let owned: Owned = match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            ApplyError(format!(
                "{}: unreadable state ({e}); it records what lvs-node changed: fix or remove it by hand after checking `ip addr` and the ARP rules",
                p.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Owned::default()),
        Err(e) => return Err(ApplyError(format!("read {}: {e}", p.display())).into()),
    };
    validate(&owned).map_err(|(key, problem)| {
        ConfigError::new(
            &p,
            key,
            problem,
            "this file records what lvs-node changed and is written only by lvs-node: \
             check `ip addr` and the ARP rules, then fix or remove the file by hand",
        )
    })?;
    Ok(owned)
}

/// A device name the kernel could hold: 1-15 bytes, no '/', whitespace or ':'.
fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && !n
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Only what lvs-node itself writes: the ARP sysctls under net/ipv4/conf/<dev>/ with small
/// integer values, and unicast VIPs on a plausible device. Anything else (a key that would
/// join another file onto /proc/sys, a loopback or multicast address) is refused before
/// anything is read or changed. Returns (key, problem).
pub fn validate(o: &Owned) -> Result<(), (String, String)> {
    for (key, value) in &o.sysctl_orig {
        let k = format!("sysctl_orig.\"{key}\"");
        let parts: Vec<&str> = key.split('/').collect();
        let ok = matches!(
            parts.as_slice(),
            ["net", "ipv4", "conf", dev, "arp_ignore" | "arp_announce"] if valid_ifname(dev)
        );
        if !ok {
            return Err((
                k,
                "is not an ARP sysctl lvs-node manages (net/ipv4/conf/<device>/arp_ignore or arp_announce)".into(),
            ));
        }
        if value.is_empty() || value.len() > 3 || !value.chars().all(|c| c.is_ascii_digit()) {
            return Err((
                k,
                format!("`{value}` is not a sysctl value lvs-node recorded"),
            ));
        }
    }
    for (i, v) in o.vips.iter().enumerate() {
        let k = format!("vips[{i}]");
        if !valid_ifname(&v.device) {
            return Err((k, format!("device `{}` is not an interface name", v.device)));
        }
        let max = if v.address.is_ipv4() { 32 } else { 128 };
        if v.prefix > max {
            return Err((k, format!("prefix /{} is longer than /{max}", v.prefix)));
        }
        let bad = v.address.is_unspecified()
            || v.address.is_loopback()
            || v.address.is_multicast()
            || matches!(v.address, IpAddr::V4(a) if a.is_broadcast() || a.is_link_local());
        if bad {
            return Err((k, format!("{} is not a VIP lvs-node would add", v.address)));
        }
    }
    Ok(())
}

pub fn save(dir: &Path, owned: &Owned) -> Result<(), ApplyError> {
    ensure_dir(dir)?;
    let p = path(dir);
    if owned.is_empty() {
        // Nothing of ours is left on the host: leave no record behind either.
        return match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ApplyError(format!("remove {}: {e}", p.display()))),
        };
    }
    let mut o = owned.clone();
    o.version = 1;
    let data = serde_json::to_vec_pretty(&o).expect("state serializes");
    lvs_shared::atomic::write(&p, &data, 0o600)
        .map_err(|e| ApplyError(format!("write {}: {e}", p.display())))
}

fn ensure_dir(dir: &Path) -> Result<(), ApplyError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ApplyError(format!("create state_dir {}: {e}", dir.display())))
}

/// An exclusive lock on state_dir/lock, held for one plan's apply.
pub struct Lock {
    _f: Flock<fs::File>,
}

/// How long a run waits for another one (the daemon's repair, an admin's `up`).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Takes the lock without blocking the async runtime: the holder may be a task of this
/// very process (the daemon's repair loop), which must keep running to release it.
pub async fn lock(dir: &Path) -> Result<Lock, ApplyError> {
    ensure_dir(dir)?;
    let p = dir.join("lock");
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| ApplyError(format!("open {}: {e}", p.display())))?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(f) => return Ok(Lock { _f: f }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err((_, e)) => {
                return Err(ApplyError(format!(
                    "lock {}: {e}; another lvs-node run holds it (wait and retry)",
                    p.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(json: &str) -> Owned {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_arp_sysctls_and_unicast_vips_pass() {
        let ok = owned(
            r#"{"sysctl_orig":{"net/ipv4/conf/eth0.100/arp_ignore":"0","net/ipv4/conf/all/arp_announce":"2"},
                "vips":[{"address":"192.0.2.100","prefix":32,"device":"lo","ports":[],"hostname":null}]}"#,
        );
        assert!(validate(&ok).is_ok());
        for (json, key) in [
            (
                r#"{"sysctl_orig":{"net/ipv4/ip_forward":"1"}}"#,
                "sysctl_orig",
            ),
            (
                r#"{"sysctl_orig":{"net/ipv4/conf/../../../../etc/x/arp_ignore":"1"}}"#,
                "sysctl_orig",
            ),
            (
                r#"{"sysctl_orig":{"net/ipv4/conf/all/arp_ignore":"1\nx"}}"#,
                "sysctl_orig",
            ),
            (
                r#"{"vips":[{"address":"127.0.0.1","prefix":8,"device":"lo","ports":[],"hostname":null}]}"#,
                "vips[0]",
            ),
            (
                r#"{"vips":[{"address":"192.0.2.100","prefix":33,"device":"lo","ports":[],"hostname":null}]}"#,
                "vips[0]",
            ),
            (
                r#"{"vips":[{"address":"192.0.2.100","prefix":32,"device":"../x","ports":[],"hostname":null}]}"#,
                "vips[0]",
            ),
        ] {
            let (k, _) = validate(&owned(json)).expect_err(json);
            assert!(k.starts_with(key), "{json}: {k}");
        }
    }
}
