//! The one boundary for another node's `/status`. A peer's document comes from another host
//! (whoever answers its report port), so nothing in it is used until [`validate`] turned it
//! into a [`PeerStatus`]: every string free of control characters and bounded, every list
//! bounded, host names per RFC 1123, addresses of the expected family and usable as a
//! unicast destination, weights clamped to what a director accepts, BFD timers within the
//! bounds a node's own config allows, and every redirect target naming the peer itself.
//! A document that fails any rule is refused as a whole ([`Invalid`]), with a reason that is
//! safe to print.
//!
//! The pool view, `pool status`, `/pool`, the redirector and `director-config --pool` only
//! ever see a [`PeerStatus`]; its fields are private, so the only way to one is through
//! [`validate`].

use super::status::StatusDoc;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The highest weight a director is given (HAProxy's maximum; keepalived takes it too).
pub const MAX_WEIGHT: u32 = 256;
/// Free text (check output, reasons, paths), in bytes. A `command` check keeps the first
/// 4 KiB of its output, which the lossy UTF-8 decoding can triple, and prefixes it.
pub const MAX_TEXT: usize = 16 * 1024;
/// Names, kinds, versions, addresses as text, in bytes.
pub const MAX_NAME: usize = 128;
pub const MAX_CHECKS: usize = 256;
pub const MAX_FAILING: usize = MAX_CHECKS;
pub const MAX_VIPS: usize = 64;
pub const MAX_SERVICES: usize = 64;
pub const MAX_PORTS: usize = 64;
pub const MAX_REDIRECTS: usize = 64;
pub const MAX_CERTIFICATES: usize = 64;
pub const MAX_BFD_DIRECTORS: usize = 16;
/// A node's own `[bfd]` accepts 10 ms to 60 s.
pub const BFD_MIN_MS: f64 = 10.0;
pub const BFD_MAX_MS: f64 = 60_000.0;

/// The longest reason kept (characters): a parser's message may quote the peer's text.
pub const MAX_REASON: usize = 512;

/// Why a peer's document was refused. The text is safe for a terminal, a page or a log:
/// whatever it quotes from the peer went through [`printable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(String);

impl Invalid {
    pub fn new(reason: impl Into<String>) -> Invalid {
        Invalid(printable(&reason.into(), MAX_REASON))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A character that must never reach a terminal, page or config from another host: C0 and
/// C1 controls, DEL, and the bidirectional overrides that reorder what a reader sees.
pub fn is_forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` for a terminal or log: forbidden characters escaped (`\u{1b}`), clipped to `max`
/// characters with `…`.
pub fn printable(s: &str, max: usize) -> String {
    let mut o = String::with_capacity(s.len().min(max.saturating_add(8)));
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            o.push('…');
            break;
        }
        if is_forbidden(c) {
            o.extend(c.escape_unicode());
        } else {
            o.push(c);
        }
    }
    o
}

/// A short quote of peer text for a reason.
fn quote(s: &str) -> String {
    format!("`{}`", printable(s, 60))
}

/// A host name per RFC 1123: dot-separated labels of 1 to 63 letters, digits and hyphens,
/// not starting or ending with a hyphen, at most 253 characters, and not all-numeric at the
/// end (which would read as an IPv4 address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName(String);

impl HostName {
    pub fn parse(s: &str) -> Result<HostName, String> {
        let bad = |why: &str| Err(format!("host name {} {why}", quote(s)));
        if s.is_empty() || s.len() > 253 {
            return bad("is empty or longer than 253 characters");
        }
        let labels: Vec<&str> = s.split('.').collect();
        for l in &labels {
            if l.is_empty() || l.len() > 63 {
                return bad("has an empty label or one longer than 63 characters");
            }
            if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return bad("has a character other than a letter, digit, hyphen or dot");
            }
            if l.starts_with('-') || l.ends_with('-') {
                return bad("has a label starting or ending with a hyphen");
            }
        }
        if labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return bad("ends in an all-numeric label");
        }
        Ok(HostName(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host part of a URL: an address or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(HostName),
}

impl Host {
    fn parse(s: &str) -> Result<Host, String> {
        if let Some(v6) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return v6
                .parse::<std::net::Ipv6Addr>()
                .map(|a| Host::Ip(IpAddr::V6(a)))
                .map_err(|_| format!("{} is not an IPv6 address", quote(v6)));
        }
        if let Ok(a) = s.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(a)));
        }
        HostName::parse(s).map(Host::Name)
    }
    fn same(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Ip(a), Host::Ip(b)) => a == b,
            (Host::Name(a), Host::Name(b)) => a.key() == b.key(),
            _ => false,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Ip(a) => write!(f, "{a}"),
            Host::Name(n) => write!(f, "{n}"),
        }
    }
}

/// `http(s)://host[:port]`, nothing else (no user, path, query or fragment), parsed by
/// this module's own rules and written back from the parsed parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    pub host: Host,
    pub port: Option<u16>,
}

impl BaseUrl {
    pub fn parse(s: &str) -> Result<BaseUrl, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{} is not an http:// or https:// URL", quote(s)));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // An IPv6 literal holds colons; the port follows its closing bracket.
        let (host, port) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return Err(format!("{} has no valid port", quote(s))),
            },
        };
        let host = Host::parse(host).map_err(|e| format!("{}: {e}", quote(s)))?;
        Ok(BaseUrl { https, host, port })
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(p) => write!(f, "{scheme}://{}:{p}", self.host),
            None => write!(f, "{scheme}://{}", self.host),
        }
    }
}

/// A node as configured here (`[pool] peers`, `--pool`, `--peer`): what its document is
/// checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUrl {
    url: String,
    base: BaseUrl,
}

impl PeerUrl {
    pub fn parse(url: &str) -> Result<PeerUrl, String> {
        let base = BaseUrl::parse(url)?;
        Ok(PeerUrl {
            url: url.trim_end_matches('/').to_string(),
            base,
        })
    }
    pub fn as_str(&self) -> &str {
        &self.url
    }
    pub fn host(&self) -> &Host {
        &self.base.host
    }
}

/// Which redirect rule applies: a peer's targets must name the peer; this node's own
/// document carries targets from its own config.
pub enum Source<'a> {
    /// Another node, with the addresses its target host names resolved to in this round.
    Peer(&'a Resolved),
    /// This node's own document, built in this process.
    Own,
}

/// Host names (lowercase) and the addresses they resolved to in one poll round.
#[derive(Debug, Default, Clone)]
pub struct Resolved(pub HashMap<String, Vec<IpAddr>>);

impl Resolved {
    pub fn insert(&mut self, name: &HostName, addrs: Vec<IpAddr>) {
        self.0.insert(name.key(), addrs);
    }
    fn get(&self, name: &HostName) -> &[IpAddr] {
        self.0.get(&name.key()).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The host names in `doc`'s redirect targets that only a look-up can tie to the peer: not
/// its URL's host, not an address. The poller resolves these (with a timeout) before
/// [`validate`].
pub fn names_to_resolve(doc: &StatusDoc, expected: &PeerUrl) -> Vec<HostName> {
    let mut v: Vec<HostName> = Vec::new();
    for r in doc.node.redirects.iter().take(MAX_REDIRECTS) {
        if let Ok(BaseUrl {
            host: Host::Name(n),
            ..
        }) = BaseUrl::parse(&r.target)
        {
            let h = Host::Name(n.clone());
            if !h.same(expected.host()) && !v.iter().any(|x| x.key() == n.key()) {
                v.push(n);
            }
        }
    }
    v
}

/// A peer's document after [`validate`]. Read-only: it derefs to the validated
/// [`StatusDoc`] (whose strings, lists, weights and targets are the checked ones).
#[derive(Debug, Clone)]
pub struct PeerStatus {
    doc: StatusDoc,
    hostname: Option<HostName>,
}

impl PeerStatus {
    /// The node's host name, when it gave one.
    pub fn hostname(&self) -> Option<&HostName> {
        self.hostname.as_ref()
    }
    /// The target this node gives for the redirect listener `listen`.
    pub fn redirect_target(&self, listen: SocketAddr) -> Option<&str> {
        self.doc
            .node
            .redirects
            .iter()
            .find(|r| r.listen == listen)
            .map(|r| r.target.as_str())
    }
    pub fn doc(&self) -> &StatusDoc {
        &self.doc
    }
    /// A document taken as it is, for the unit tests of what renders it (the page's own
    /// escaping is tested with text that validation would refuse).
    #[cfg(test)]
    pub fn unchecked(doc: StatusDoc) -> PeerStatus {
        let hostname = HostName::parse(&doc.node.hostname).ok();
        PeerStatus { doc, hostname }
    }
}

impl std::ops::Deref for PeerStatus {
    type Target = StatusDoc;
    fn deref(&self) -> &StatusDoc {
        &self.doc
    }
}

fn text(what: &str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.len() > max {
        return Err(Invalid::new(format!(
            "{what} is longer than {max} bytes ({})",
            s.len()
        )));
    }
    if s.chars().any(is_forbidden) {
        return Err(Invalid::new(format!(
            "{what} {} holds control characters",
            quote(s)
        )));
    }
    Ok(())
}

fn count(what: &str, n: usize, max: usize) -> Result<(), Invalid> {
    if n > max {
        return Err(Invalid::new(format!("too many {what} ({n} > {max})")));
    }
    Ok(())
}

/// An address a director or client may be sent to: not unspecified, loopback, multicast or
/// the IPv4 broadcast address.
fn unicast(what: &str, a: IpAddr) -> Result<(), Invalid> {
    let bad = a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    if bad {
        return Err(Invalid::new(format!("{what} {a} is not a unicast address")));
    }
    Ok(())
}

fn endpoint(what: &str, a: SocketAddr) -> Result<(), Invalid> {
    unicast(what, a.ip())?;
    if a.port() == 0 {
        return Err(Invalid::new(format!("{what} {a} has port 0")));
    }
    Ok(())
}

fn family(what: &str, a: IpAddr, v4: bool) -> Result<(), Invalid> {
    if a.is_ipv4() != v4 {
        return Err(Invalid::new(format!(
            "{what} {a} is not an {} address",
            if v4 { "IPv4" } else { "IPv6" }
        )));
    }
    unicast(what, a)
}

fn finite(what: &str, x: f64) -> Result<(), Invalid> {
    if !x.is_finite() || x < 0.0 {
        return Err(Invalid::new(format!(
            "{what} {x} is not a finite number >= 0"
        )));
    }
    Ok(())
}

/// Checks `doc`, a document from the node configured as `expected`, against every rule of
/// this module; clamps the weights to 0..=[`MAX_WEIGHT`] and writes each redirect target
/// back from its parsed parts.
pub fn validate(
    mut doc: StatusDoc,
    expected: &PeerUrl,
    source: Source<'_>,
) -> Result<PeerStatus, Invalid> {
    // Counts first: nothing below walks an unbounded list.
    count("checks", doc.checks.len(), MAX_CHECKS)?;
    count("failing checks", doc.failing.len(), MAX_FAILING)?;
    count("VIPs", doc.vips.len(), MAX_VIPS)?;
    count("services", doc.node.services.len(), MAX_SERVICES)?;
    count("redirects", doc.node.redirects.len(), MAX_REDIRECTS)?;
    count("certificates", doc.certificates.len(), MAX_CERTIFICATES)?;

    if let Some(r) = &doc.reason {
        text("reason", r, MAX_TEXT)?;
    }
    if let Some(r) = &doc.admin.reason {
        text("admin reason", r, MAX_TEXT)?;
    }
    if let Some(r) = &doc.reload_error {
        text("reload error", r, MAX_TEXT)?;
    }
    text("version", &doc.version, MAX_NAME)?;
    doc.weight = doc.weight.min(MAX_WEIGHT);
    doc.base_weight = doc.base_weight.min(MAX_WEIGHT);
    doc.node.base_weight = doc.node.base_weight.min(MAX_WEIGHT);
    finite("load1", doc.load.load1)?;
    if let Some(ms) = doc.last_repair_ms {
        finite("last_repair_ms", ms)?;
    }
    for c in &doc.checks {
        text("check name", &c.name, MAX_NAME)?;
        text("check kind", &c.kind, MAX_NAME)?;
        text("check detail", &c.detail, MAX_TEXT)?;
        finite("check latency", c.latency_ms)?;
    }
    for f in &doc.failing {
        text("failing check name", &f.name, MAX_NAME)?;
        text("failing check kind", &f.kind, MAX_NAME)?;
        text("failing check reason", &f.reason, MAX_TEXT)?;
    }
    for v in &doc.vips {
        text("VIP address", &v.address, MAX_NAME)?;
        text("VIP detail", &v.detail, MAX_TEXT)?;
    }
    for c in &doc.certificates {
        text("certificate check", &c.check, MAX_NAME)?;
        text("certificate path", &c.path, MAX_TEXT)?;
        if let Some(e) = &c.error {
            text("certificate error", e, MAX_TEXT)?;
        }
    }
    if let Some(m) = &doc.macaroon {
        text("macaroon secret path", &m.path, MAX_TEXT)?;
        if let Some(e) = &m.error {
            text("macaroon secret error", e, MAX_TEXT)?;
        }
        if let Some(f) = &m.fingerprint {
            if f.len() != 16
                || !f
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(Invalid::new(format!(
                    "macaroon fingerprint {} is not 16 lowercase hex digits",
                    quote(f)
                )));
            }
        }
    }

    let n = &doc.node;
    let hostname = if n.hostname.is_empty() {
        None
    } else {
        Some(HostName::parse(&n.hostname).map_err(Invalid::new)?)
    };
    if let Some(a) = n.real_ip {
        family("real_ip", a, true)?;
    }
    if let Some(a) = n.real_ip6 {
        family("real_ip6", a, false)?;
    }
    if let Some(a) = n.report_http {
        endpoint("report_http", a)?;
    }
    if let Some(a) = n.agent_check {
        endpoint("agent_check", a)?;
    }
    if let Some(a) = n.report_http6 {
        family("report_http6", a.ip(), false)?;
        endpoint("report_http6", a)?;
    }
    for s in &n.services {
        unicast("service VIP", s.vip)?;
        if let Some(h) = &s.hostname {
            HostName::parse(h).map_err(|e| Invalid::new(format!("service {}: {e}", s.vip)))?;
        }
        count("ports", s.ports.len(), MAX_PORTS)?;
        if s.ports.contains(&0) {
            return Err(Invalid::new(format!("service {} has port 0", s.vip)));
        }
    }
    if let Some(b) = &n.bfd {
        unicast("BFD source", b.source)?;
        count("BFD directors", b.directors.len(), MAX_BFD_DIRECTORS)?;
        for d in &b.directors {
            unicast("BFD director", *d)?;
        }
        for (what, ms) in [
            ("BFD min_tx_ms", b.min_tx_ms),
            ("BFD min_rx_ms", b.min_rx_ms),
        ] {
            if !(BFD_MIN_MS..=BFD_MAX_MS).contains(&ms) {
                return Err(Invalid::new(format!(
                    "{what} {ms} is outside {BFD_MIN_MS}..{BFD_MAX_MS}"
                )));
            }
        }
        if b.multiplier == 0 {
            return Err(Invalid::new("BFD multiplier 0"));
        }
    }

    // Every redirect target is scheme://host[:port] naming this peer.
    let (real4, real6) = (n.real_ip, n.real_ip6);
    let own: Vec<IpAddr> = real4.into_iter().chain(real6).collect();
    let mut targets = Vec::with_capacity(n.redirects.len());
    for r in &n.redirects {
        unicast("redirect listener", r.listen.ip())?;
        let t = BaseUrl::parse(&r.target)
            .map_err(|e| Invalid::new(format!("redirect target for {}: {e}", r.listen)))?;
        let ok = match (&source, &t.host) {
            (Source::Own, _) => true,
            (_, h) if h.same(expected.host()) => true,
            (_, Host::Ip(a)) => own.contains(a),
            (Source::Peer(res), Host::Name(name)) => res.get(name).iter().any(|a| own.contains(a)),
        };
        if !ok {
            return Err(Invalid::new(format!(
                "redirect target {} for {} names neither this peer ({}) nor a host name that \
                 resolves to its real address ({})",
                quote(&r.target),
                r.listen,
                expected.host(),
                if own.is_empty() {
                    "none reported".to_string()
                } else {
                    own.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
        targets.push(t.to_string());
    }
    for (r, t) in doc.node.redirects.iter_mut().zip(targets) {
        r.target = t;
    }
    Ok(PeerStatus { doc, hostname })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::state::{Admin, NodeState};
    use crate::wire::status::{FailingCheck, RedirectTarget};

    fn url() -> PeerUrl {
        PeerUrl::parse("http://192.0.2.12:8080").unwrap()
    }

    fn doc() -> StatusDoc {
        let mut d = StatusDoc::sample(NodeState::Up, Admin::Ready, 100);
        d.node.hostname = "n2.example.org".into();
        d.node.real_ip = Some("192.0.2.12".parse().unwrap());
        d.node.report_http = Some("192.0.2.12:8080".parse().unwrap());
        d
    }

    fn peer(d: StatusDoc) -> Result<PeerStatus, Invalid> {
        validate(d, &url(), Source::Peer(&Resolved::default()))
    }

    fn target(d: &mut StatusDoc, t: &str) {
        d.node.redirects = vec![RedirectTarget {
            listen: "192.0.2.100:8000".parse().unwrap(),
            target: t.into(),
        }];
    }

    #[test]
    fn host_names_follow_rfc_1123() {
        for ok in ["a", "n2.example.org", "x-1.EXAMPLE.org", "1a.b2"] {
            assert!(HostName::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("{}.org", "a".repeat(64));
        let too_long = vec!["abc"; 64].join(".");
        for bad in [
            "",
            "a..b",
            "-a.org",
            "a-.org",
            "a_b.org",
            "a b",
            "evil\n}\nvirtual_server",
            "1.2.3.4",
            long.as_str(),
            too_long.as_str(),
        ] {
            assert!(HostName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_good_document_passes_and_weights_are_clamped() {
        let mut d = doc();
        d.weight = u32::MAX;
        d.base_weight = 1000;
        d.node.base_weight = u32::MAX;
        let p = peer(d).unwrap();
        assert_eq!(p.weight, MAX_WEIGHT);
        assert_eq!(p.base_weight, MAX_WEIGHT);
        assert_eq!(p.node.base_weight, MAX_WEIGHT);
        assert_eq!(p.hostname().unwrap().as_str(), "n2.example.org");
    }

    #[test]
    fn control_characters_anywhere_refuse_the_document() {
        let mut d = doc();
        d.failing.push(FailingCheck {
            name: "gridftp".into(),
            kind: "gridftp".into(),
            reason: "refused \u{1b}]0;pwned\u{7}\u{1b}[2J".into(),
        });
        let e = peer(d).unwrap_err();
        assert!(e.as_str().contains("control characters"), "{e}");
        assert!(!e.as_str().contains('\u{1b}'), "{e:?}");
        let mut d = doc();
        d.node.hostname = "evil\n}\nvirtual_server 192.0.2.200 80 {".into();
        let e = peer(d).unwrap_err();
        assert!(!e.as_str().contains('\n'), "{e:?}");
        let mut d = doc();
        d.version = "1.0\u{202e}".into();
        assert!(peer(d).is_err());
    }

    #[test]
    fn counts_and_sizes_are_bounded() {
        let mut d = doc();
        d.failing = (0..MAX_FAILING + 1)
            .map(|i| FailingCheck {
                name: format!("c{i}"),
                kind: "tcp".into(),
                reason: "x".into(),
            })
            .collect();
        assert!(peer(d).unwrap_err().as_str().contains("too many failing"));
        let mut d = doc();
        d.reason = Some("x".repeat(MAX_TEXT + 1));
        assert!(peer(d).unwrap_err().as_str().contains("longer than"));
    }

    #[test]
    fn a_macaroon_fingerprint_is_16_lowercase_hex_digits() {
        let with = |f: &str| {
            let mut d = doc();
            d.macaroon = Some(crate::wire::status::MacaroonSecret {
                path: "/etc/xrootd/macaroon-secret".into(),
                fingerprint: Some(f.into()),
                error: None,
            });
            peer(d)
        };
        assert!(with("0123456789abcdef").is_ok());
        for bad in [
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdef0",
            "secret\u{1b}[2Jxxxxxx",
        ] {
            assert!(with(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_of_the_wrong_family_or_not_unicast_are_refused() {
        for (v4, v6) in [
            (Some("2001:db8::12"), None),
            (None, Some("192.0.2.12")),
            (Some("0.0.0.0"), None),
            (Some("127.0.0.1"), None),
            (Some("224.0.0.1"), None),
            (Some("255.255.255.255"), None),
            (None, Some("::1")),
            (None, Some("ff02::1")),
        ] {
            let mut d = doc();
            d.node.real_ip = v4.map(|a| a.parse().unwrap());
            d.node.real_ip6 = v6.map(|a| a.parse().unwrap());
            assert!(peer(d).is_err(), "{v4:?} {v6:?}");
        }
    }

    #[test]
    fn bfd_timers_must_be_sane() {
        let mut d = doc();
        d.node.bfd = Some(crate::wire::status::BfdInfo {
            source: "192.0.2.12".parse().unwrap(),
            directors: vec!["192.0.2.2".parse().unwrap()],
            min_tx_ms: 50.0,
            min_rx_ms: 50.0,
            multiplier: 3,
        });
        assert!(peer(d.clone()).is_ok());
        d.node.bfd.as_mut().unwrap().min_rx_ms = 0.0;
        assert!(peer(d.clone()).is_err());
        d.node.bfd.as_mut().unwrap().min_rx_ms = 50.0;
        d.node.bfd.as_mut().unwrap().multiplier = 0;
        assert!(peer(d).is_err());
    }

    #[test]
    fn a_redirect_target_must_name_the_peer() {
        // Its URL's host, or its real address.
        for t in [
            "http://192.0.2.12:8000",
            "https://192.0.2.12:8443/",
            "http://192.0.2.12",
        ] {
            let mut d = doc();
            target(&mut d, t);
            let p = peer(d).unwrap();
            let got = p
                .redirect_target("192.0.2.100:8000".parse().unwrap())
                .unwrap();
            assert_eq!(got, t.trim_end_matches('/'));
        }
        // Anything else is refused, whatever its form.
        for t in [
            "http://evil.example:8000",
            "http://192.0.2.66:8000",
            "http://192.0.2.12@evil.example",
            "http://192.0.2.12:8000/x",
            "http://192.0.2.12:8000\r\nSet-Cookie: a=b",
            "ftp://192.0.2.12",
            "http://[2001:db8::66]:8000",
        ] {
            let mut d = doc();
            target(&mut d, t);
            assert!(peer(d).is_err(), "{t:?}");
        }
        // A host name counts when it resolved to the peer's real address in this round.
        let mut d = doc();
        target(&mut d, "http://n2.example.org:8000");
        let url = url();
        assert_eq!(
            names_to_resolve(&d, &url)
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>(),
            ["n2.example.org"]
        );
        let mut res = Resolved::default();
        assert!(validate(d.clone(), &url, Source::Peer(&res)).is_err());
        res.insert(
            &HostName::parse("N2.example.org").unwrap(),
            vec!["192.0.2.66".parse().unwrap()],
        );
        assert!(validate(d.clone(), &url, Source::Peer(&res)).is_err());
        res.insert(
            &HostName::parse("n2.example.org").unwrap(),
            vec!["192.0.2.12".parse().unwrap()],
        );
        assert!(validate(d.clone(), &url, Source::Peer(&res)).is_ok());
        // This node's own targets come from its own config.
        target(&mut d, "http://elsewhere.example.org:8000");
        assert!(validate(d, &url, Source::Own).is_ok());
    }

    #[test]
    fn printable_escapes_and_clips() {
        assert_eq!(printable("a\u{1b}[2Jb", 100), "a\\u{1b}[2Jb");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
