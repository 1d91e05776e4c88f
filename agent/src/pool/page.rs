//! `GET /pool`: the pool at a glance, one row per node of `[pool] peers` (and this node):
//! state, admin state, weight, sessions, failing checks, certificate expiry, and the last
//! hour of weight and sessions drawn as inline SVG.
//!
//! It only renders what the pool poller already has (the latest [`PoolView`] and the
//! bounded [`History`]); it never asks a peer itself. Everything a peer sends is text from
//! another machine (check output, a drain reason, a host name): it reaches the page only
//! validated ([`crate::wire::peer`]: no control characters, bounded), and besides every
//! such string is HTML-escaped and clipped. A peer whose answer was refused is shown as
//! `invalid` with the reason. The page has no external assets and no script: a meta refresh
//! reloads it. Its size is bounded by the peer list (at most 256), the history (at most
//! [`MAX_SAMPLES`](crate::pool::history::MAX_SAMPLES) per node) and the clipping below.

use super::history::{History, Sample, SharedHistory, WINDOW};
use super::{PeerState, PeerView, PoolRx, PoolView};
use crate::health::Snapshot;
use crate::util::time::utc;
use lvs_shared::config::NodeConfig;
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest peer-provided text shown (characters).
const TEXT_MAX: usize = 300;
/// Failing checks and certificates shown per node.
const LIST_MAX: usize = 16;
const GRAPH_W: f64 = 240.0;
const GRAPH_H: f64 = 56.0;
/// Points drawn per graph at most (one per pixel would be more than the eye gets).
const GRAPH_POINTS: usize = 240;

/// `s` safe inside HTML text and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// Peer text, clipped to [`TEXT_MAX`] characters, then escaped.
fn text(s: &str) -> String {
    if s.chars().count() > TEXT_MAX {
        let cut: String = s.chars().take(TEXT_MAX).collect();
        esc(&format!("{cut}…"))
    } else {
        esc(s)
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const STYLE: &str = "body{font:14px/1.35 system-ui,sans-serif;margin:1.2em;color:#222}\
h1{font-size:1.35em;margin:0 0 .2em}.sub{color:#666;margin:0 0 1em}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.45em .5em;\
text-align:left;vertical-align:top}th{background:#f4f4f4;font-weight:600}\
.url{color:#666;font-size:.85em}.me{font-size:.75em;background:#e8eefc;color:#1f4fa8;\
padding:0 .35em;border-radius:3px;margin-left:.3em}\
.st{display:inline-block;padding:.1em .55em;border-radius:3px;font-weight:600;color:#fff}\
.st-up{background:#2e8540}.st-held{background:#8e44ad}.st-drain,.st-maint{background:#c77c02}\
.st-down,.st-unreachable,.st-stale,.st-invalid{background:#c0392b}\
.err{color:#a12a1e}.warn{color:#a35f00}.ok{color:#2e6b3a}.muted{color:#888}\
ul{margin:0;padding-left:1.1em}.num{font-variant-numeric:tabular-nums;white-space:nowrap}\
.nw{white-space:nowrap}.legend{color:#666}.legend i{display:inline-block;width:1.2em;height:.3em;\
vertical-align:middle;margin:0 .25em 0 .6em}";

/// The whole page. `me` names the node serving it; `refresh` is the reload period.
pub fn render(
    view: &PoolView,
    history: &History,
    me: &str,
    refresh: Duration,
    note: Option<&str>,
    now: SystemTime,
) -> String {
    let mut counts: Vec<(PeerState, usize)> = Vec::new();
    for p in &view.peers {
        let st = p.state(now, view.max_age);
        match counts.iter_mut().find(|(s, _)| *s == st) {
            Some((_, n)) => *n += 1,
            None => counts.push((st, 1)),
        }
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let mut o = String::with_capacity(4096 + view.peers.len() * 8192);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{r}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>lvs-node pool</title><style>{STYLE}</style></head><body>\n\
         <h1>Pool: {n} node(s) &mdash; {s}</h1>\n\
         <p class=\"sub\">Seen from {me} at {t}; this page reloads every {r} s. \
         <span class=\"legend\">History (up to the last hour): \
         <i style=\"background:#1f5fbf\"></i>weight\
         <i style=\"background:#d9730d\"></i>sessions\
         <i style=\"background:#f3b0b0;height:.8em\"></i>down, unreachable or invalid\
         <i style=\"background:#f5dca0;height:.8em\"></i>drain or maint</span></p>\n",
        r = refresh.as_secs().max(1),
        n = view.peers.len(),
        s = esc(&summary.join(", ")),
        me = esc(me),
        t = utc(unix(now)),
    );
    if let Some(n) = note {
        let _ = writeln!(o, "<p class=\"warn\">{}</p>", esc(n));
    }
    let held = counts
        .iter()
        .find(|(s, _)| *s == PeerState::Held)
        .map_or(0, |(_, n)| *n);
    if held > 0 {
        let _ = writeln!(
            o,
            "<p class=\"warn\">{held} node(s) held in: their shared checks fail, and \
             depooling them would leave fewer nodes serving than [pool] depool_threshold.</p>"
        );
    }
    o.push_str(
        "<table><thead><tr><th>Node</th><th>State</th><th>Admin</th><th>Weight</th>\
         <th>Sessions</th><th>Failing checks</th><th>Certificate</th>\
         <th>History</th></tr></thead><tbody>\n",
    );
    for p in &view.peers {
        row(&mut o, p, view.max_age, &history.samples(&p.url), now);
    }
    o.push_str("</tbody></table>\n</body></html>\n");
    o
}

fn row(o: &mut String, p: &PeerView, max_age: Duration, samples: &[Sample], now: SystemTime) {
    let st = p.state(now, max_age);
    let doc = p.status.as_ref();
    let name = doc
        .and_then(|d| d.hostname())
        .map(|h| h.as_str())
        .unwrap_or("?");
    let _ = write!(
        o,
        "<tr><td><b>{}</b>{}<div class=\"url\">{}</div></td>",
        text(name),
        if p.is_self {
            "<span class=\"me\">this node</span>"
        } else {
            ""
        },
        text(&p.url)
    );
    let _ = write!(
        o,
        "<td><span class=\"st st-{s}\">{s}</span>",
        s = st.as_str()
    );
    if st == PeerState::Held {
        o.push_str("<div class=\"warn\">serving through a shared failure</div>");
    }
    if let Some(e) = &p.error {
        let _ = write!(o, "<div class=\"err\">{}</div>", text(e));
    }
    if let Some(e) = &p.invalid {
        let _ = write!(o, "<div class=\"err\">invalid: {}</div>", text(e));
    }
    o.push_str("</td>");
    let Some(d) = doc else {
        o.push_str("<td class=\"muted\">?</td><td class=\"muted\">?</td><td class=\"muted\">?</td><td class=\"muted\">?</td><td class=\"muted\">?</td>");
        let _ = writeln!(o, "<td>{}</td></tr>", graph(samples, 0, now));
        return;
    };
    // Admin state, with the admin's reason and since when.
    let _ = write!(o, "<td>{}", d.admin.admin.as_str());
    if let Some(r) = &d.admin.reason {
        let _ = write!(o, "<div class=\"muted\">{}</div>", text(r));
    }
    if d.admin.since > 0 && d.admin.admin != crate::health::Admin::Ready {
        let _ = write!(o, "<div class=\"muted\">since {}</div>", utc(d.admin.since));
    }
    o.push_str("</td>");
    let _ = write!(
        o,
        "<td class=\"num\">{} / {}</td><td class=\"num\">{}</td>",
        d.weight, d.base_weight, d.load.sessions
    );
    // Failing checks.
    o.push_str("<td>");
    if d.failing.is_empty() {
        o.push_str("<span class=\"ok\">none</span>");
    } else {
        o.push_str("<ul>");
        for f in d.failing.iter().take(LIST_MAX) {
            let _ = write!(
                o,
                "<li class=\"err\"><b>{}</b> ({}): {}</li>",
                text(&f.name),
                text(&f.kind),
                text(&f.reason)
            );
        }
        if d.failing.len() > LIST_MAX {
            let _ = write!(o, "<li>and {} more</li>", d.failing.len() - LIST_MAX);
        }
        o.push_str("</ul>");
    }
    o.push_str("</td><td>");
    // Certificates watched by `certificate` checks.
    if d.certificates.is_empty() {
        o.push_str("<span class=\"muted\">none watched</span>");
    }
    for c in d.certificates.iter().take(LIST_MAX) {
        match (c.days_left, c.not_after) {
            (Some(days), Some(na)) => {
                let class = if days < 7 {
                    "err"
                } else if days < 14 {
                    "warn"
                } else {
                    "ok"
                };
                let _ = write!(
                    o,
                    "<div class=\"{class}\" title=\"{}\">{days} d left<div class=\"muted nw\">until {}</div></div>",
                    text(&c.path),
                    utc(na.max(0) as u64)
                        .get(..10)
                        .unwrap_or_default()
                );
            }
            _ => {
                let _ = write!(
                    o,
                    "<div class=\"err\">{}: {}</div>",
                    text(&c.path),
                    text(c.error.as_deref().unwrap_or("unreadable"))
                );
            }
        }
    }
    o.push_str("</td>");
    let _ = writeln!(o, "<td>{}</td></tr>", graph(samples, d.base_weight, now));
}

/// The last hour as a small SVG: state bands behind the weight (on 0..base) and sessions
/// (on 0..their maximum) lines. Gaps where the node did not answer.
fn graph(samples: &[Sample], base: u32, now: SystemTime) -> String {
    // Thinned to every k-th sample (always keeping the newest), so a full hour costs
    // GRAPH_POINTS points, not MAX_SAMPLES.
    let k = samples.len().div_ceil(GRAPH_POINTS).max(1);
    let samples: Vec<Sample> = samples.iter().rev().step_by(k).rev().copied().collect();
    let samples = samples.as_slice();
    // The x axis spans the history there is (a node polled for 5 minutes gets 5 minutes
    // across the graph), at least a minute and at most the whole window.
    let span = samples
        .first()
        .and_then(|s| now.duration_since(s.at).ok())
        .unwrap_or_default()
        .clamp(Duration::from_secs(60), WINDOW);
    let span = Duration::from_secs(span.as_secs().div_ceil(60) * 60);
    let start = now.checked_sub(span).unwrap_or(UNIX_EPOCH);
    let x = |t: SystemTime| {
        let s = t.duration_since(start).unwrap_or_default().as_secs_f64();
        (s / span.as_secs_f64() * GRAPH_W).clamp(0.0, GRAPH_W)
    };
    let wmax = samples
        .iter()
        .filter_map(|s| s.weight)
        .max()
        .unwrap_or(0)
        .max(base)
        .max(1) as f64;
    let smax = samples
        .iter()
        .filter_map(|s| s.sessions)
        .max()
        .unwrap_or(0)
        .max(1);
    let pad = 3.0;
    let y = |v: f64, max: f64| GRAPH_H - pad - v / max * (GRAPH_H - 2.0 * pad);
    let m = span.as_secs() / 60;
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{GRAPH_W}\" height=\"{GRAPH_H}\" \
         viewBox=\"0 0 {GRAPH_W} {GRAPH_H}\" role=\"img\"><title>weight (max {wmax}) and sessions \
         (max {smax}) over the last {m} min</title>\
         <rect width=\"{GRAPH_W}\" height=\"{GRAPH_H}\" fill=\"#fafafa\" stroke=\"#ddd\"/>"
    );
    // State bands: each sample covers the time up to the next one (the last: up to now);
    // a run of samples of one colour is one rectangle.
    let band = |st: PeerState| match st {
        PeerState::Up => None,
        PeerState::Held | PeerState::Drain | PeerState::Maint => Some("#f5dca0"),
        _ => Some("#f3b0b0"),
    };
    let mut i = 0;
    while i < samples.len() {
        let fill = band(samples[i].state);
        let mut j = i + 1;
        while j < samples.len() && band(samples[j].state) == fill {
            j += 1;
        }
        if let Some(fill) = fill {
            let x0 = x(samples[i].at);
            let x1 = samples.get(j).map(|n| x(n.at)).unwrap_or(x(now));
            let _ = write!(
                o,
                "<rect x=\"{x0:.1}\" y=\"0\" width=\"{:.1}\" height=\"{GRAPH_H}\" fill=\"{fill}\"/>",
                (x1 - x0).max(1.0)
            );
        }
        i = j;
    }
    let line = |o: &mut String, color: &str, pick: &dyn Fn(&Sample) -> Option<f64>, max: f64| {
        let mut pts: Vec<String> = Vec::new();
        let flush = |o: &mut String, pts: &mut Vec<String>| {
            if pts.len() == 1 {
                // A single point still shows, as a short dash.
                let p = pts[0].clone();
                pts.push(p);
            }
            if !pts.is_empty() {
                let _ = write!(
                    o,
                    "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" \
                     stroke-linejoin=\"round\" points=\"{}\"/>",
                    pts.join(" ")
                );
            }
            pts.clear();
        };
        for s in samples {
            match pick(s) {
                Some(v) => pts.push(format!("{:.1},{:.1}", x(s.at), y(v, max))),
                None => flush(o, &mut pts),
            }
        }
        flush(o, &mut pts);
    };
    // Sessions peak at 80 % of the height, so that they stay visible next to a full weight.
    line(
        &mut o,
        "#d9730d",
        &|s| s.sessions.map(|v| v as f64),
        smax as f64 * 1.25,
    );
    line(&mut o, "#1f5fbf", &|s| s.weight.map(f64::from), wmax);
    let _ = write!(
        o,
        "<text x=\"3\" y=\"11\" font-size=\"9\" fill=\"#888\">-{m} min</text>\
         <text x=\"{}\" y=\"11\" font-size=\"9\" fill=\"#888\" text-anchor=\"end\">now</text></svg>",
        GRAPH_W - 3.0
    );
    o
}

/// What `/pool` shows: the pool poller's latest round and its history. Both outlive poller
/// restarts; without `[pool] peers` the view stays empty and the page shows this node only.
#[derive(Clone)]
pub struct Feed {
    pub view: PoolRx,
    pub history: SharedHistory,
}

/// The `/pool` page from the poller's latest round; without a poller (no `[pool] peers`),
/// this node alone.
pub fn assemble(snap: &Snapshot, cfg: &NodeConfig, pool: &Feed) -> String {
    let now = std::time::SystemTime::now();
    let polled = pool.view.borrow().clone();
    let own;
    let mut view: &super::PoolView = &polled;
    let note = if cfg.daemon.pool.peers.is_empty() {
        own = super::PoolView {
            peers: vec![super::own_view(
                &super::self_url(cfg).unwrap_or_default(),
                crate::health::status::build(snap, cfg),
            )],
            max_age: Duration::from_secs(1),
        };
        view = &own;
        Some("No [pool] peers in this node's config: only this node is shown. List every node's report endpoint in [pool] peers.")
    } else if view.peers.is_empty() {
        Some("The first poll of the pool has not finished yet.")
    } else {
        None
    };
    let me = crate::health::status::node_info(cfg).hostname;
    // Reload about as often as the pool is polled, not faster than every 5 s.
    let refresh = cfg
        .daemon
        .pool
        .interval
        .clamp(Duration::from_secs(5), Duration::from_secs(60));
    // A copy, so the poller's next `record` never waits for a page being rendered (up to
    // 10 MB for 256 peers); the copy is bounded by the history's own limits.
    let history = pool
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    render(view, &history, &me, refresh, note, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Admin, AdminState, Load, NodeState};
    use crate::pool::history::STEP;
    use crate::wire::peer::PeerStatus;
    use crate::wire::status::{CertExpiry, FailingCheck, StatusDoc};

    fn doc(state: NodeState, admin: Admin, weight: u32) -> StatusDoc {
        let mut d = StatusDoc::sample(state, admin, weight);
        d.admin = AdminState {
            admin,
            reason: Some("<i>upgrade</i>".into()),
            since: 1_700_000_000,
        };
        d.load = Load {
            sessions: 7,
            ..Load::default()
        };
        d
    }

    #[test]
    fn a_held_node_is_shown_as_held() {
        let now = SystemTime::now();
        let mut d = doc(NodeState::Up, Admin::Ready, 100);
        d.held = true;
        d.shared_failure = true;
        let view = PoolView {
            max_age: Duration::from_secs(3),
            peers: vec![PeerView {
                url: "http://192.0.2.12:8080".into(),
                is_self: false,
                status: Some(PeerStatus::unchecked(d)),
                error: None,
                invalid: None,
                fetched_at: now,
            }],
        };
        let page = render(
            &view,
            &History::default(),
            "n1",
            Duration::from_secs(5),
            None,
            now,
        );
        assert!(
            page.contains("<span class=\"st st-held\">held</span>"),
            "{page}"
        );
        assert!(page.contains("1 node(s) held in"), "{page}");
        assert!(page.contains("1 held"), "{page}");
    }

    #[test]
    fn peer_text_cannot_inject_markup() {
        let now = SystemTime::now();
        let mut down = doc(NodeState::Down, Admin::Ready, 0);
        down.node.hostname = "\"><img src=x onerror=alert(1)>".into();
        down.failing.push(FailingCheck {
            name: "gridftp</b><script>alert(1)</script>".into(),
            kind: "tcp".into(),
            reason: "<script>alert('x')</script> & more".into(),
        });
        down.certificates.push(CertExpiry {
            check: "c".into(),
            path: "/x'<svg onload=alert(1)>".into(),
            not_after: None,
            days_left: None,
            error: Some("<b>bad</b>".into()),
        });
        let long = "A".repeat(100_000);
        let view = PoolView {
            max_age: Duration::from_secs(3),
            peers: vec![
                PeerView {
                    url: "http://192.0.2.12:8080".into(),
                    is_self: false,
                    status: Some(PeerStatus::unchecked(down)),
                    error: None,
                    invalid: None,
                    fetched_at: now,
                },
                PeerView {
                    url: "http://192.0.2.13:8080".into(),
                    is_self: false,
                    status: None,
                    error: Some(format!("<iframe src=//evil>{long}")),
                    invalid: None,
                    fetched_at: now,
                },
                PeerView {
                    url: "http://192.0.2.14:8080".into(),
                    is_self: false,
                    status: None,
                    error: None,
                    invalid: Some("host name `<b>x` is bad".into()),
                    fetched_at: now,
                },
            ],
        };
        let mut h = History::default();
        h.record(&view, now);
        let page = render(&view, &h, "<me>", Duration::from_secs(5), None, now);
        for bad in [
            "<script",
            "<img",
            "<iframe",
            "<svg onload",
            "<b>bad",
            "<i>upgrade",
            "<me>",
        ] {
            assert!(!page.contains(bad), "{bad} reached the page:\n{page}");
        }
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
        // A host name is shown only when it is one (RFC 1123).
        assert!(!page.contains("img src=x"), "{page}");
        assert!(page.contains("&lt;i&gt;upgrade&lt;/i&gt;"));
        // Long peer text is clipped: the page stays small.
        assert!(page.len() < 20_000, "{}", page.len());
        assert!(page.contains("AAA…"));
        // The states and numbers are there.
        assert!(page.contains("st-down"), "{page}");
        assert!(page.contains("st-unreachable"));
        assert!(page.contains("<span class=\"st st-invalid\">invalid</span>"));
        assert!(
            page.contains("invalid: host name `&lt;b&gt;x` is bad"),
            "{page}"
        );
        assert!(page.contains("0 / 100"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    }

    #[test]
    fn graph_draws_weight_sessions_and_state_bands() {
        let now = SystemTime::now();
        let at = |m: u64| now - Duration::from_secs(m * 60);
        let s = |m, state, w: Option<u32>, n: Option<u64>| Sample {
            at: at(m),
            state,
            weight: w,
            sessions: n,
        };
        let samples = [
            s(60, PeerState::Up, Some(100), Some(0)),
            s(30, PeerState::Up, Some(100), Some(2)),
            s(20, PeerState::Drain, Some(0), Some(1)),
            s(10, PeerState::Unreachable, None, None),
            s(0, PeerState::Up, Some(50), Some(4)),
        ];
        let g = graph(&samples, 100, now);
        assert!(g.starts_with("<svg") && g.ends_with("</svg>"));
        // Two weight segments and two session segments (a gap where it did not answer).
        assert_eq!(g.matches("<polyline").count(), 4, "{g}");
        assert!(g.contains("fill=\"#f5dca0\""));
        assert!(g.contains("fill=\"#f3b0b0\""));
        // 30 min ago is the middle of the graph; weight 100 of 100 is the top.
        assert!(g.contains("120.0,3.0"), "{g}");
    }

    #[test]
    fn worst_case_page_is_bounded() {
        // 256 peers (the config's limit), each with a full hour whose state flips every
        // sample, and 40 failing checks with 10 kB reasons of characters that escaping
        // quadruples: about 10 MB, rendered in under half a second (debug build).
        let now = SystemTime::now();
        let mut d = doc(NodeState::Down, Admin::Ready, 0);
        d.failing = (0..40)
            .map(|i| FailingCheck {
                name: format!("c{i}"),
                kind: "command".into(),
                reason: "<".repeat(10_000),
            })
            .collect();
        let urls: Vec<String> = (0..256)
            .map(|i| format!("http://10.0.{}.{}:8080", i / 200, i % 200))
            .collect();
        let mut h = History::default();
        let mut t = now - WINDOW;
        let mut flip = false;
        while t <= now {
            flip = !flip;
            let st = if flip {
                NodeState::Down
            } else {
                NodeState::Drain
            };
            let view = PoolView {
                max_age: Duration::from_secs(3600 * 2),
                peers: urls
                    .iter()
                    .map(|u| PeerView {
                        url: u.clone(),
                        is_self: false,
                        status: Some(PeerStatus::unchecked(doc(st, Admin::Ready, 0))),
                        error: None,
                        invalid: None,
                        fetched_at: t,
                    })
                    .collect(),
            };
            h.record(&view, t);
            t += STEP;
        }
        let view = PoolView {
            max_age: Duration::from_secs(3),
            peers: urls
                .iter()
                .map(|u| PeerView {
                    url: u.clone(),
                    is_self: false,
                    status: Some(PeerStatus::unchecked(d.clone())),
                    error: None,
                    invalid: None,
                    fetched_at: now,
                })
                .collect(),
        };
        let started = std::time::Instant::now();
        let page = render(&view, &h, "me", Duration::from_secs(5), None, now);
        eprintln!(
            "worst case: {} bytes for {} nodes in {:?}",
            page.len(),
            view.peers.len(),
            started.elapsed()
        );
        assert!(page.len() < 16 << 20, "{}", page.len());
        assert_eq!(page.matches("and 24 more").count(), 256);
    }
}
