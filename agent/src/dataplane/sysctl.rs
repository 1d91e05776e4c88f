//! Sysctls under /proc/sys, read before written so an unchanged value is never rewritten
//! (netavark's pattern). Keys are slash paths (`net/ipv4/conf/eth0.100/arp_ignore`) so
//! interface names with dots stay unambiguous. /proc/sys/net is per network namespace.

use super::ApplyError;
use std::path::PathBuf;

pub fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key)
}

/// The dotted form admins know from `sysctl -w`.
pub fn display(key: &str) -> String {
    key.replace('/', ".")
}

/// Defence in depth beside the config and state checks: a key stays below /proc/sys/net.
fn checked(key: &str) -> Result<(), ApplyError> {
    let ok = key.starts_with("net/")
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(ApplyError(format!(
            "refusing sysctl key `{key}`: not a network sysctl below /proc/sys/net"
        )))
    }
}

pub fn read(key: &str) -> Result<String, ApplyError> {
    checked(key)?;
    std::fs::read_to_string(path(key))
        .map(|s| s.trim().to_string())
        .map_err(|e| ApplyError(format!("read sysctl {}: {e}", display(key))))
}

/// Writes `value` unless the key already holds it. Returns whether it wrote.
pub fn write(key: &str, value: &str) -> Result<bool, ApplyError> {
    if read(key)? == value {
        return Ok(false);
    }
    std::fs::write(path(key), value)
        .map_err(|e| ApplyError(format!("write sysctl {}={value}: {e}", display(key))))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_stay_below_proc_sys_net() {
        for k in [
            "kernel/hostname",
            "net/../kernel/hostname",
            "/etc/passwd",
            "net//x",
            "net/ipv4/conf/./all",
        ] {
            assert!(super::checked(k).is_err(), "{k}");
            assert!(super::write(k, "1").is_err(), "{k}");
        }
        assert!(super::checked("net/ipv4/conf/eth0.100/arp_ignore").is_ok());
    }
}
