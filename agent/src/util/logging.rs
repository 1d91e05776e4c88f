//! Log output, chosen once at start from where stderr goes:
//!
//! - **journald** (stderr is the journal stream systemd set up: `JOURNAL_STREAM` names its
//!   device and inode): each event is sent with the native protocol, with its level as
//!   `PRIORITY`, `SYSLOG_IDENTIFIER=lvs-node`, and every field as a journal field (`vip` ->
//!   `VIP`, `trigger` -> `TRIGGER`), so `journalctl -u lvs-node VIP=192.0.2.100` works.
//!   `MESSAGE` is the whole plain line, message and fields, so the default `journalctl` view
//!   loses nothing. (tracing-journald puts only the message in `MESSAGE`: the repair steps
//!   and errors would vanish from the default view.) If the journal socket cannot be reached
//!   the line goes to stderr instead.
//! - **plain text** when stderr is not a terminal (a pipe, a file, a stream under another
//!   supervisor): no ANSI colour codes.
//! - **colour** on a terminal.
//!
//! `RUST_LOG` overrides the -v/-q level.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
pub const IDENTIFIER: &str = "lvs-node";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journal,
    Plain,
    Terminal,
}

/// `JOURNAL_STREAM` is `DEVICE:INODE` of the stream systemd connected to stdout/stderr; it
/// applies only while stderr is still that stream (a child with redirected stderr inherits
/// the variable but not the stream).
pub fn choose(journal_stream: Option<&str>, stderr_id: Option<(u64, u64)>, tty: bool) -> Sink {
    if let (Some(js), Some((dev, ino))) = (journal_stream, stderr_id) {
        if let Some((d, i)) = js.trim().split_once(':') {
            if d.parse() == Ok(dev) && i.parse() == Ok(ino) {
                return Sink::Journal;
            }
        }
    }
    if tty {
        Sink::Terminal
    } else {
        Sink::Plain
    }
}

fn stderr_id() -> Option<(u64, u64)> {
    let st = nix::sys::stat::fstat(std::io::stderr()).ok()?;
    Some((st.st_dev as u64, st.st_ino as u64))
}

pub fn init(verbose: u8, quiet: bool) {
    let level = if quiet {
        "error"
    } else {
        match verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level))
    };
    let sink = choose(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_id(),
        std::io::stderr().is_terminal(),
    );
    if sink == Sink::Journal {
        if let Ok(j) = JournalLayer::connect(JOURNAL_SOCKET) {
            let _ = tracing_subscriber::registry()
                .with(j.with_filter(filter()))
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(sink == Sink::Terminal)
        .try_init();
}

/// Sends events to journald with the native protocol
/// (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>).
pub struct JournalLayer {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl JournalLayer {
    /// Connects to journald's socket (an empty datagram checks that it listens).
    pub fn connect(path: &str) -> std::io::Result<JournalLayer> {
        let socket = UnixDatagram::unbound()?;
        socket.send_to(&[], path)?;
        Ok(JournalLayer {
            socket,
            path: path.into(),
        })
    }
}

/// An event's message and fields, in order.
#[derive(Default)]
pub struct Fields {
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            self.message = v;
        } else {
            self.fields.push((field.name().to_string(), v));
        }
    }
}

impl Fields {
    /// The plain line: `message key=value ...`.
    pub fn line(&self) -> String {
        let mut s = self.message.clone();
        for (k, v) in &self.fields {
            let _ = write!(s, " {k}={v}");
        }
        s
    }
}

/// A journal field name: upper case letters, digits and `_`, not starting with `_` (those
/// are trusted fields journald sets itself) or a digit.
pub fn field_name(name: &str) -> Option<String> {
    let n: String = name
        .chars()
        .map(|c| if c == '.' { '_' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let n = n.trim_start_matches(|c: char| c == '_' || c.is_ascii_digit());
    (!n.is_empty() && n.len() <= 64).then(|| n.to_string())
}

/// syslog priorities, as journald and `journalctl -p` use them.
pub fn priority(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

fn put(buf: &mut Vec<u8>, name: &str, value: &str) {
    if value.contains('\n') {
        // Binary-safe form: NAME\n, little-endian u64 length, value, \n.
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'=');
    }
    buf.extend_from_slice(value.as_bytes());
    buf.push(b'\n');
}

/// One journal entry for an event.
pub fn entry(level: &Level, f: &Fields) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    put(&mut buf, "MESSAGE", &f.line());
    put(&mut buf, "PRIORITY", &priority(level).to_string());
    put(&mut buf, "SYSLOG_IDENTIFIER", IDENTIFIER);
    for (k, v) in &f.fields {
        if let Some(n) = field_name(k) {
            if !matches!(n.as_str(), "MESSAGE" | "PRIORITY" | "SYSLOG_IDENTIFIER") {
                put(&mut buf, &n, v);
            }
        }
    }
    buf
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let level = event.metadata().level();
        if self.socket.send_to(&entry(level, &f), &self.path).is_err() {
            // Too large for a datagram, or journald restarting: keep the line.
            eprintln!("{} {}", level, f.line());
        }
    }
}

/// Splits repair steps by the VIP they name, so each VIP's repair is one journal entry with
/// a `VIP` field; steps that name no VIP (ARP suppression sysctls, tables) come last with
/// None.
pub fn steps_by_vip(steps: &[String], vips: &[IpAddr]) -> Vec<(Option<IpAddr>, Vec<String>)> {
    let mut out: Vec<(Option<IpAddr>, Vec<String>)> = Vec::new();
    let mut rest = Vec::new();
    for s in steps {
        match vips.iter().find(|v| names_address(s, &v.to_string())) {
            Some(v) => match out.iter_mut().find(|(k, _)| *k == Some(*v)) {
                Some((_, list)) => list.push(s.clone()),
                None => out.push((Some(*v), vec![s.clone()])),
            },
            None => rest.push(s.clone()),
        }
    }
    if !rest.is_empty() {
        out.push((None, rest));
    }
    out
}

/// Whether `text` contains `addr` as a whole token (192.0.2.1 is not in 192.0.2.10).
fn names_address(text: &str, addr: &str) -> bool {
    let part = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
    text.match_indices(addr).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + addr.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_choice() {
        assert_eq!(
            choose(Some("8:1234"), Some((8, 1234)), false),
            Sink::Journal
        );
        // Inherited variable, but stderr was redirected: not the journal.
        assert_eq!(choose(Some("8:1234"), Some((8, 99)), false), Sink::Plain);
        assert_eq!(choose(None, Some((8, 1)), true), Sink::Terminal);
        assert_eq!(choose(Some("junk"), Some((8, 1)), false), Sink::Plain);
    }

    #[test]
    fn journal_entry_fields() {
        let f = Fields {
            message: "repaired the data plane".into(),
            fields: vec![
                ("vip".into(), "192.0.2.100".into()),
                ("trigger".into(), "event".into()),
                ("_bad".into(), "x".into()),
                ("multi".into(), "a\nb".into()),
            ],
        };
        let e = entry(&Level::WARN, &f);
        let text = String::from_utf8_lossy(&e);
        // A value with a newline makes MESSAGE use the binary-safe form.
        assert!(text.starts_with("MESSAGE\n"), "{text}");
        assert!(text
            .contains("repaired the data plane vip=192.0.2.100 trigger=event _bad=x multi=a\nb\n"));
        assert!(
            text.contains(
                "\nPRIORITY=4\nSYSLOG_IDENTIFIER=lvs-node\nVIP=192.0.2.100\nTRIGGER=event\nBAD=x\n"
            ),
            "{text}"
        );
        assert!(e.windows(6).any(|w| w == b"MULTI\n"));
        assert_eq!(field_name("9lives"), Some("LIVES".into()));
        assert_eq!(field_name("__"), None);
    }

    #[test]
    fn steps_grouped_by_vip() {
        let vips: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.10".parse().unwrap()];
        let steps = vec![
            "add VIP 192.0.2.10/32 on lo".to_string(),
            "set net.ipv4.conf.all.arp_ignore = 1 (now 0)".to_string(),
            "add VIP 192.0.2.1/32 on lo".to_string(),
        ];
        let g = steps_by_vip(&steps, &vips);
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].0, Some(vips[1]));
        assert_eq!(g[1].0, Some(vips[0]));
        assert_eq!(g[2].0, None);
        assert_eq!(g[2].1.len(), 1);
    }
}
