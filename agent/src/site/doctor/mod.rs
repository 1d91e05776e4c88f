//! `lvs-node doctor`: checks a real server for what breaks LVS-DR GridFTP and explains
//! each finding with its fix. Read-only: it changes nothing on the host.
//!
//! One file per check area; each returns [`Finding`]s with stable ids (`dataplane`,
//! `rp_filter`, `arp_announce`, `arp_ignore`, `gridftp.control_interface`, `gridftp.data_interface`, `gridftp.port_range`,
//! `gridftp.firewall`, `firewalld`, `hostname.loopback`, `cert.names`, `cert.expiry`, `cert.client_auth`, `report.http`,
//! `report.agent_check`, `report`, `pool.tls`, `xrootd.token_audience`, `xrootd.macaroon_secret`). Exit 0 without error findings, 1 with at least one,
//! 2 for a bad config or usage.

pub mod cert;
pub mod dataplane;
pub mod firewall;
pub mod gridftp;
pub mod hostname;
pub mod macaroons;
pub mod pool;
pub mod report;
pub mod sysctl;
pub mod tokens;

use crate::site::gridftp_conf::{GridftpSettings, Paths};
use crate::util::exit::{EXIT_FAIL, EXIT_OK};
use lvs_shared::config::NodeConfig;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warn,
    Error,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Ok => "[ ok ]",
            Severity::Warn => "[WARN]",
            Severity::Error => "[FAIL]",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `gridftp.data_interface`.
    pub id: String,
    pub severity: Severity,
    /// One line.
    pub summary: String,
    /// Why it matters (may span lines).
    pub detail: String,
    /// What to do; None when the finding is ok.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(id: &str, summary: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            id: id.into(),
            severity: Severity::Ok,
            summary: summary.into(),
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn warn(
        id: &str,
        summary: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::with_fix(
            Severity::Warn,
            id,
            summary.into(),
            detail.into(),
            fix.into(),
        )
    }
    pub fn error(
        id: &str,
        summary: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::with_fix(
            Severity::Error,
            id,
            summary.into(),
            detail.into(),
            fix.into(),
        )
    }
    fn with_fix(
        severity: Severity,
        id: &str,
        summary: String,
        detail: String,
        fix: String,
    ) -> Finding {
        Finding {
            id: id.into(),
            severity,
            summary,
            detail,
            fix: Some(fix),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub error: usize,
    pub exit_code: u8,
}

pub fn summarize(findings: &[Finding]) -> Summary {
    let mut s = Summary::default();
    for f in findings {
        match f.severity {
            Severity::Ok => s.ok += 1,
            Severity::Warn => s.warn += 1,
            Severity::Error => s.error += 1,
        }
    }
    s.exit_code = if s.error > 0 { EXIT_FAIL } else { EXIT_OK };
    s
}

/// Runs every check in order. Never fails: problems are findings.
pub async fn diagnose(cfg: &NodeConfig, paths: &Paths) -> Vec<Finding> {
    let mut out = Vec::new();
    let status = crate::dataplane::observe(cfg).await;
    out.push(dataplane::finding(cfg, &status));
    out.extend(sysctl::findings(cfg, status.as_ref().ok()));
    let gf = GridftpSettings::load(&paths.gridftp_conf, paths.sysconfig.as_deref());
    out.extend(gridftp::findings(cfg, &gf));
    out.extend(firewall::findings(cfg, &gf));
    out.push(hostname::finding(&gf));
    out.extend(cert::findings(cfg, paths, &gf));
    out.extend(report::findings(cfg).await);
    out.extend(pool::findings(cfg));
    out.extend(tokens::findings(cfg, &paths.xrootd_conf));
    out.extend(macaroons::findings(cfg, &paths.xrootd_conf));
    out
}

/// Human output: one line per finding, then the indented detail and fix.
pub fn render(findings: &[Finding], s: &Summary) -> String {
    let mut t = String::new();
    for f in findings {
        t.push_str(&format!("{} {}: {}\n", f.severity.label(), f.id, f.summary));
        for l in f.detail.lines().flat_map(|l| wrap(l, 92)) {
            t.push_str(&format!("       {l}\n"));
        }
        if let Some(fix) = &f.fix {
            let mut lines = fix.lines();
            if let Some(first) = lines.next() {
                t.push_str(&format!("       fix: {first}\n"));
            }
            for l in lines {
                t.push_str(&format!("            {l}\n"));
            }
        }
    }
    t.push_str(&format!(
        "{} ok, {} warning(s), {} error(s)\n",
        s.ok, s.warn, s.error
    ));
    t
}

/// Word-wraps one line to `width` columns (long words stay whole).
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for w in line.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_follows_errors_only() {
        let w = vec![
            Finding::ok("a", "fine", ""),
            Finding::warn("b", "hmm", "d", "f"),
        ];
        assert_eq!(summarize(&w).exit_code, EXIT_OK);
        let mut e = w.clone();
        e.push(Finding::error("c", "bad", "d", "f"));
        let s = summarize(&e);
        assert_eq!((s.ok, s.warn, s.error, s.exit_code), (1, 1, 1, EXIT_FAIL));
        let text = render(&e, &s);
        assert!(
            text.contains("[FAIL] c: bad\n       d\n       fix: f\n"),
            "{text}"
        );
    }
}
