//! `[bfd]`: the node speaks BFD (RFC 5880 asynchronous mode, RFC 5881 single hop) to each
//! director, so that a director's `BFD_CHECK` learns within one packet that the node went
//! down, drained or stopped, instead of at its next HTTP check.
//!
//! ```toml
//! [bfd]
//! directors = ["192.0.2.2", "192.0.2.3"]  # the directors' own addresses (one session each)
//! source = "192.0.2.11"                   # default: real_ip (required without it)
//! min_tx = "50ms"                         # desired min TX interval
//! min_rx = "50ms"                         # required min RX interval
//! multiplier = 3
//! ```
//!
//! `source` is never taken from the interface: the directors' `neighbor_ip` names it, so it
//! must be an address the operator wrote down, not one the agent picked at start.

use crate::error::ConfigError;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBfd {
    #[serde(default)]
    directors: Vec<String>,
    source: Option<String>,
    min_tx: Option<String>,
    min_rx: Option<String>,
    multiplier: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bfd {
    /// One session per director, in config order.
    pub directors: Vec<IpAddr>,
    /// The node's address the sessions run from (and the directors' `neighbor_ip`).
    pub source: IpAddr,
    pub min_tx: Duration,
    pub min_rx: Duration,
    pub multiplier: u8,
}

/// Shortest interval accepted: below this a busy agent would miss its own packets.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval accepted; the field holds microseconds in 32 bits (about 71 minutes).
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// `real_ip` and `real_ip6` are the node's fixed addresses: the default `source` is the one
/// of the directors' family (the first director decides), so an IPv6-only node with
/// `real_ip6` needs no `source`.
pub fn validate(
    file: &Path,
    raw: RawBfd,
    real_ip: Option<IpAddr>,
    real_ip6: Option<IpAddr>,
) -> Result<Bfd, ConfigError> {
    let err = |key: &str, problem: String, fix: &str| ConfigError::new(file, key, problem, fix);
    if raw.directors.is_empty() {
        return Err(err(
            "bfd.directors",
            "empty: BFD needs at least one director".into(),
            "list the directors' own addresses, e.g. directors = [\"192.0.2.2\"], or remove [bfd]",
        ));
    }
    let source = match &raw.source {
        Some(s) => s.parse::<IpAddr>().map_err(|_| {
            err(
                "bfd.source",
                format!("`{s}` is not an IP address"),
                "write the node's own address, e.g. source = \"192.0.2.11\"",
            )
        })?,
        None => {
            let v6 = raw
                .directors
                .first()
                .and_then(|d| d.parse::<IpAddr>().ok())
                .is_some_and(|d| d.is_ipv6());
            let fixed = if v6 {
                real_ip6.or(real_ip.filter(|a| a.is_ipv6()))
            } else {
                real_ip.filter(|a| a.is_ipv4())
            };
            let (key, fam) = if v6 {
                ("real_ip6", "IPv6")
            } else {
                ("real_ip", "IPv4")
            };
            fixed.ok_or_else(|| {
                err(
                    "bfd.source",
                    format!("missing, and there is no {key} to default to for {fam} directors (the interface's address is not used: the directors' neighbor_ip must name a fixed address)"),
                    &format!("set source = \"NODE_IP\" in [bfd] (the address the directors list as neighbor_ip), or set {key}"),
                )
            })?
        }
    };
    if source.is_unspecified() || source.is_loopback() || source.is_multicast() {
        return Err(err(
            "bfd.source",
            format!("{source} cannot be a BFD source (unspecified, loopback or multicast)"),
            "use the node's own unicast address that the directors reach",
        ));
    }
    let mut directors = Vec::new();
    for (i, d) in raw.directors.iter().enumerate() {
        let key = format!("bfd.directors[{i}]");
        let a: IpAddr = d.parse().map_err(|_| {
            err(
                &key,
                format!("`{d}` is not an IP address"),
                "write the director's own address (not the VIP), e.g. \"192.0.2.2\"",
            )
        })?;
        if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
            return Err(err(
                &key,
                format!("{a} cannot be a BFD peer"),
                "write the director's own unicast address",
            ));
        }
        if a.is_ipv4() != source.is_ipv4() {
            return Err(err(
                &key,
                format!("{a} and bfd.source {source} are of different families"),
                "use directors of the source's family, or set bfd.source to the node's address of theirs",
            ));
        }
        if a == source {
            return Err(err(
                &key,
                format!("{a} is the node's own bfd.source"),
                "write the director's address",
            ));
        }
        if directors.contains(&a) {
            return Err(err(
                &key,
                format!("{a} is listed twice"),
                "remove the duplicate",
            ));
        }
        directors.push(a);
    }
    let dur = |key: &str, v: &Option<String>| -> Result<Duration, ConfigError> {
        let Some(s) = v else {
            return Ok(Duration::from_millis(50));
        };
        let d = crate::duration::parse(s)
            .map_err(|p| err(key, p, "write a duration such as \"50ms\" or \"300ms\""))?;
        if d < MIN_INTERVAL || d > MAX_INTERVAL {
            return Err(err(
                key,
                format!("`{s}` is outside 10ms..60s"),
                "use e.g. \"50ms\" (fast failover) or \"300ms\"",
            ));
        }
        Ok(d)
    };
    let min_tx = dur("bfd.min_tx", &raw.min_tx)?;
    let min_rx = dur("bfd.min_rx", &raw.min_rx)?;
    let multiplier = match raw.multiplier {
        None => 3,
        Some(m) if (1..=255).contains(&m) => m as u8,
        Some(m) => {
            return Err(err(
                "bfd.multiplier",
                format!("{m} is outside 1..255"),
                "use 3 (the usual value): the session is down after that many missed packets",
            ))
        }
    };
    Ok(Bfd {
        directors,
        source,
        min_tx,
        min_rx,
        multiplier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(t: &str) -> RawBfd {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn defaults_and_errors() {
        let p = Path::new("/n.toml");
        let b = validate(
            p,
            raw("directors = [\"192.0.2.2\"]"),
            Some("192.0.2.11".parse().unwrap()),
            None,
        )
        .unwrap();
        assert_eq!(b.source, "192.0.2.11".parse::<IpAddr>().unwrap());
        assert_eq!(b.min_tx, Duration::from_millis(50));
        assert_eq!(b.multiplier, 3);
        // Without real_ip, source is required (documented in docs/daemon.md, "BFD").
        let e = validate(p, raw("directors = [\"192.0.2.2\"]"), None, None).unwrap_err();
        assert_eq!(e.key, "bfd.source");
        assert!(
            e.fix.contains("source = ") && e.fix.contains("real_ip"),
            "{e}"
        );
        let e = validate(p, raw("directors = []"), None, None).unwrap_err();
        assert_eq!(e.key, "bfd.directors");
        let e = validate(
            p,
            raw("directors = [\"192.0.2.2\", \"x\"]\nsource = \"192.0.2.11\""),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.key, "bfd.directors[1]");
        let e = validate(
            p,
            raw("directors = [\"2001:db8::2\"]\nsource = \"192.0.2.11\""),
            None,
            None,
        )
        .unwrap_err();
        assert!(e.problem.contains("families"), "{e}");
        let e = validate(
            p,
            raw("directors = [\"192.0.2.2\"]\nsource = \"192.0.2.11\"\nmin_tx = \"1ms\""),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.key, "bfd.min_tx");
        let e = validate(
            p,
            raw("directors = [\"192.0.2.2\"]\nsource = \"192.0.2.11\"\nmultiplier = 0"),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.key, "bfd.multiplier");
        // IPv6 directors default to real_ip6 (an IPv6-only node), never to an IPv4 real_ip.
        let v6: IpAddr = "2001:db8::11".parse().unwrap();
        let b = validate(
            p,
            raw("directors = [\"2001:db8::2\"]"),
            Some("192.0.2.11".parse().unwrap()),
            Some(v6),
        )
        .unwrap();
        assert_eq!(b.source, v6);
        let e = validate(
            p,
            raw("directors = [\"2001:db8::2\"]"),
            Some("192.0.2.11".parse().unwrap()),
            None,
        )
        .unwrap_err();
        assert!(e.fix.contains("real_ip6"), "{e}");
    }
}
