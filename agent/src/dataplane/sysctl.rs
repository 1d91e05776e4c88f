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

pub fn read(key: &str) -> Result<String, ApplyError> {
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
