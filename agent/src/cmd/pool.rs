//! `lvs-node pool status`: one line per node of the pool, read from every node's /status
//! with the same client, parser and validation as the poller of `lvs-node run`.
//!
//! What a peer sent reaches the terminal only validated (no control characters), and
//! every string printed goes through [`peer::printable`] besides: an escape sequence in a
//! peer's text can neither move the cursor nor retitle the terminal.

use crate::cli::PoolStatusArgs;
use crate::pool::{client, members, poll_once, PeerState, PeerView};
use crate::util::exit::{EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use crate::wire::peer;
use lvs_shared::config::daemon::parse_peer;
use lvs_shared::config::tls::{self, Pair};
use lvs_shared::config::NodeConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The TLS files of `--ca`, `--cert` and `--key`, checked as the config's are (readable
/// PEM, the key 0600 or 0400 and belonging to the certificate). Errors name the flag.
pub fn tls_flags(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<(Option<PathBuf>, Option<Pair>), String> {
    let flag =
        |e: lvs_shared::error::ConfigError| format!("{}: {}\n  fix: {}", e.key, e.problem, e.fix);
    let none = Path::new("");
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let ca = ca.map(abs);
    if let Some(p) = &ca {
        tls::ca_path(none, "--ca", p).map_err(flag)?;
    }
    let pair = match (cert, key) {
        (Some(c), Some(k)) => {
            let (c, k) = (abs(c), abs(k));
            tls::cert_file(none, "--cert", &c).map_err(flag)?;
            tls::key_file(none, "--key", &k).map_err(flag)?;
            crate::report::tls::check_pair(none, ("--cert", &c), ("--key", &k)).map_err(flag)?;
            Some(Pair { cert: c, key: k })
        }
        _ => None,
    };
    Ok((ca, pair))
}

/// The nodes to ask: `--peer` flags, else `[pool] peers` and this node.
fn peers(config: &Path, args: &PoolStatusArgs) -> Result<Vec<String>, String> {
    if !args.peer.is_empty() {
        let mut v: Vec<String> = Vec::new();
        for p in &args.peer {
            let b = parse_peer(p).map_err(|e| {
                format!("--peer: {e}; write a report endpoint, e.g. --peer http://192.0.2.12:8080")
            })?;
            if !v.contains(&b) {
                v.push(b);
            }
        }
        return Ok(v);
    }
    let cfg = NodeConfig::load(config).map_err(|e| e.to_string())?;
    let v = members(&cfg);
    if v.is_empty() {
        return Err(format!(
            "{}: no [pool] peers and no [report] http: add [pool] peers = [\"http://NODE:8080\", ...] \
             or pass --peer URL",
            config.display()
        ));
    }
    Ok(v)
}

pub async fn status(config: &Path, args: PoolStatusArgs) -> u8 {
    let list = match peers(config, &args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let (mut ca, mut cert) = match tls_flags(
        args.ca.as_deref(),
        args.cert.as_deref(),
        args.key.as_deref(),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut min_serving = args.min_serving;
    if ca.is_none() || cert.is_none() || min_serving.is_none() {
        // Without the flags, `[pool]`'s settings (the config was read and checked above
        // unless --peer was given; then only a config that loads is used).
        if let Ok(cfg) = NodeConfig::load(config) {
            ca = ca.or(cfg.daemon.pool.ca);
            cert = cert.or(cfg.daemon.pool.client);
            min_serving = min_serving.or(Some(cfg.daemon.pool.min_serving));
        }
    }
    let min_serving = min_serving.unwrap_or(1);
    let c = match client(args.timeout, ca.as_deref(), cert.as_ref(), &list) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let views = poll_once(&c, &list, args.timeout, None).await;
    let now = SystemTime::now();
    // Fresh answers only: nothing here is older than this run.
    let max_age = args.timeout + Duration::from_secs(1);
    let states: Vec<PeerState> = views.iter().map(|v| v.state(now, max_age)).collect();
    let verdict = judge(&states, min_serving);
    let differ = macaroon_differs(&views);
    if args.json {
        let arr: Vec<serde_json::Value> = views
            .iter()
            .map(|v| {
                serde_json::json!({
                    "url": v.url,
                    "state": v.state(now, max_age).as_str(),
                    "error": v.error,
                    "invalid": v.invalid,
                    "macaroon_differs": differ.contains(&v.url),
                    "status": v.status.as_ref().map(|s| s.doc()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
    } else {
        print_table(&views, now, max_age);
        if !differ.is_empty() {
            for l in macaroon_report(&views, &differ).lines() {
                println!("{}", printable_line(l));
            }
        }
    }
    // The serving summary goes to stderr with --json, so the array stays the whole stdout.
    match (&verdict.warning, args.json) {
        (Some(w), true) => eprintln!("{}: {w}", verdict.summary),
        (Some(w), false) => println!("{}: {w}", verdict.summary),
        (None, false) => println!("{}", verdict.summary),
        (None, true) => {}
    }
    if verdict.fail || !differ.is_empty() {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}

/// What the states of the pool add up to.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `SERVING 2 of 4 (1 held)`.
    pub summary: String,
    /// Fewer nodes serve than `min_serving`, or none does.
    pub warning: Option<String>,
    /// Exit 1: a node is down, held, unreachable, stale or invalid, or fewer than
    /// `min_serving` nodes serve, or none does. Drained and maintenance nodes alone are an
    /// admin's choice, as long as enough others serve.
    pub fail: bool,
}

pub fn judge(states: &[PeerState], min_serving: u32) -> Verdict {
    let serving = states.iter().filter(|s| s.serving()).count();
    let held = states.iter().filter(|s| **s == PeerState::Held).count();
    let mut summary = format!("SERVING {serving} of {}", states.len());
    if held > 0 {
        summary.push_str(&format!(
            " ({held} held: serving through a shared failure, [pool] depool_threshold)"
        ));
    }
    let warning = if serving == 0 {
        Some("no node serves: the VIP answers nothing".to_string())
    } else if serving < min_serving as usize {
        Some(format!(
            "fewer nodes serve than the minimum of {min_serving} (--min-serving, [pool] min_serving)"
        ))
    } else {
        None
    };
    let bad = states.iter().any(|s| {
        matches!(
            s,
            PeerState::Down
                | PeerState::Held
                | PeerState::Unreachable
                | PeerState::Stale
                | PeerState::Invalid
        )
    });
    Verdict {
        summary,
        fail: bad || warning.is_some(),
        warning,
    }
}

/// What a node says of its macaroon secret: its fingerprint, `unreadable`, or `none`
/// (no `[report] macaroon_secret`).
fn macaroon_of(v: &PeerView) -> Option<String> {
    let s = v.status.as_ref()?;
    Some(match &s.macaroon {
        None => "none".into(),
        Some(m) => m.fingerprint.clone().unwrap_or_else(|| "unreadable".into()),
    })
}

/// The nodes (by URL) whose macaroon secret differs from the one most nodes hold (the
/// first seen on a tie), when at least one node reports a secret. A macaroon issued by
/// one of them fails on the others: through the VIP a client's next request may reach
/// any node.
pub fn macaroon_differs(views: &[PeerView]) -> Vec<String> {
    let seen: Vec<(&str, String)> = views
        .iter()
        .filter_map(|v| macaroon_of(v).map(|m| (v.url.as_str(), m)))
        .collect();
    if seen.iter().all(|(_, m)| m == "none") {
        return Vec::new();
    }
    let mut best: Option<(&str, usize)> = None;
    for (_, m) in &seen {
        let n = seen.iter().filter(|(_, o)| o == m).count();
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((m.as_str(), n));
        }
    }
    let Some((common, _)) = best else {
        return Vec::new();
    };
    let common = if common == "unreadable" || common == "none" {
        ""
    } else {
        common
    };
    seen.iter()
        .filter(|(_, m)| m != common)
        .map(|(u, _)| u.to_string())
        .collect()
}

/// The lines `pool status` prints under the table when the secrets differ.
fn macaroon_report(views: &[PeerView], differ: &[String]) -> String {
    let mut t = String::from(
        "MACAROON SECRET DIFFERS: a macaroon issued by one node fails on the others\n",
    );
    for v in views {
        if let Some(m) = macaroon_of(v) {
            let mark = if differ.contains(&v.url) {
                "  <- differs"
            } else {
                ""
            };
            t.push_str(&format!("  {}  {m}{mark}\n", v.url));
        }
    }
    t.push_str(
        "  fix: give every node the same secret file (macaroons.secretkey, [report] \
         macaroon_secret), then restart xrootd on the nodes that differ",
    );
    t
}

/// One line per node: NODE STATE ADMIN WEIGHT SESSIONS CERT FAILING.
pub fn print_table(views: &[PeerView], now: SystemTime, max_age: Duration) {
    let w = views.iter().map(|v| v.url.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<w$}  {:<11}  {:<5}  {:>7}  {:>8}  {:<9}  FAILING",
        "NODE", "STATE", "ADMIN", "WEIGHT", "SESSIONS", "CERT"
    );
    for v in views {
        println!("{}", printable_line(&line(v, now, max_age, w)));
    }
}

/// A line with every forbidden character escaped: the second line of defence after
/// validation.
fn printable_line(l: &str) -> String {
    peer::printable(l, usize::MAX)
}

pub fn line(v: &PeerView, now: SystemTime, max_age: Duration, w: usize) -> String {
    let st = v.state(now, max_age).as_str();
    let Some(s) = &v.status else {
        let why = match (&v.invalid, &v.error) {
            (Some(i), _) => format!("invalid: {i}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".into(),
        };
        return format!(
            "{:<w$}  {:<11}  {:<5}  {:>7}  {:>8}  {:<9}  {}",
            v.url, st, "-", "-", "-", "-", why
        );
    };
    let cert = match (
        s.cert_days_left(),
        s.certificates.iter().find(|c| c.error.is_some()),
    ) {
        (_, Some(_)) => "unreadable".to_string(),
        (Some(d), None) if d < 0 => "expired".to_string(),
        (Some(d), None) => format!("{d}d"),
        (None, None) => "-".to_string(),
    };
    let failing = if s.failing.is_empty() {
        "-".to_string()
    } else {
        s.failing
            .iter()
            .map(|f| format!("{}: {}", f.name, f.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!(
        "{:<w$}  {:<11}  {:<5}  {:>7}  {:>8}  {:<9}  {}",
        v.url,
        st,
        s.admin.admin.as_str(),
        format!("{}/{}", s.weight, s.base_weight),
        s.load.sessions,
        cert,
        failing
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Admin, NodeState};
    use crate::wire::peer::PeerStatus;
    use crate::wire::status::{FailingCheck, StatusDoc};

    fn with_secret(url: &str, fp: Option<&str>) -> PeerView {
        let mut d = StatusDoc::sample(NodeState::Up, Admin::Ready, 100);
        d.macaroon = fp.map(|f| crate::wire::status::MacaroonSecret {
            path: "/etc/xrootd/macaroon-secret".into(),
            fingerprint: Some(f.into()),
            error: None,
        });
        PeerView {
            url: url.into(),
            is_self: false,
            status: Some(PeerStatus::unchecked(d)),
            error: None,
            invalid: None,
            fetched_at: SystemTime::now(),
        }
    }

    #[test]
    fn the_node_whose_macaroon_secret_differs_is_flagged() {
        let same = [
            with_secret("http://a", Some("00112233aabbccdd")),
            with_secret("http://b", Some("00112233aabbccdd")),
        ];
        assert!(macaroon_differs(&same).is_empty());
        let one_off = [
            with_secret("http://a", Some("00112233aabbccdd")),
            with_secret("http://b", Some("ffffffffffffffff")),
            with_secret("http://c", Some("00112233aabbccdd")),
        ];
        assert_eq!(macaroon_differs(&one_off), ["http://b"]);
        let text = macaroon_report(&one_off, &macaroon_differs(&one_off));
        assert!(
            text.contains("http://b  ffffffffffffffff  <- differs"),
            "{text}"
        );
        // A node without the secret configured differs from nodes that have one.
        let missing = [
            with_secret("http://a", Some("00112233aabbccdd")),
            with_secret("http://b", None),
        ];
        assert_eq!(macaroon_differs(&missing), ["http://b"]);
        // No node with macaroons: nothing to compare.
        let none = [with_secret("http://a", None), with_secret("http://b", None)];
        assert!(macaroon_differs(&none).is_empty());
    }

    #[test]
    fn none_serving_fails_and_fewer_than_the_minimum_warns() {
        use PeerState::*;
        // Every node drained: an admin's choice per node, but nothing serves.
        let v = judge(&[Drain, Drain, Maint], 1);
        assert!(v.fail);
        assert_eq!(v.summary, "SERVING 0 of 3");
        assert_eq!(
            v.warning.as_deref(),
            Some("no node serves: the VIP answers nothing")
        );
        // ... even with no minimum configured.
        assert!(judge(&[Drain, Drain], 0).fail);
        // One drained, the rest up: fine.
        let v = judge(&[Up, Drain, Up], 2);
        assert_eq!((v.fail, v.warning), (false, None));
        // Below the minimum.
        let v = judge(&[Up, Drain, Drain], 2);
        assert!(v.fail);
        assert!(v.warning.unwrap().contains("minimum of 2"));
        // Held nodes serve, and say so; a held node is a failing check: exit 1.
        let v = judge(&[Held, Held, Down, Down], 2);
        assert!(v.fail);
        assert_eq!(v.warning, None);
        assert!(
            v.summary.starts_with("SERVING 2 of 4 (2 held"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn no_control_character_reaches_the_terminal() {
        // Validation refuses such a document; this is the second line of defence.
        let mut d = StatusDoc::sample(NodeState::Down, Admin::Ready, 0);
        d.failing.push(FailingCheck {
            name: "x\u{1b}[2J".into(),
            kind: "tcp".into(),
            reason: "\u{1b}]0;pwned\u{7}\u{9b}31m".into(),
        });
        let v = PeerView {
            url: "http://192.0.2.12:8080".into(),
            is_self: false,
            status: Some(PeerStatus::unchecked(d)),
            error: None,
            invalid: None,
            fetched_at: SystemTime::now(),
        };
        let l = printable_line(&line(&v, SystemTime::now(), Duration::from_secs(9), 4));
        assert!(!l.chars().any(|c| c.is_control()), "{l:?}");
        assert!(l.contains("\\u{1b}]0;pwned"), "{l}");
    }
}
