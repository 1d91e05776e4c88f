//! `lvs-cert renew`: replays the recorded `acme` run. `acme` itself does nothing when the
//! certificate is not due, takes the pool lock, and installs a certificate another node
//! just issued, so this is safe from a timer on every node.

use crate::cli::{AcmeArgs, RenewArgs};
use crate::error::usage;
use anyhow::{Context, Result};

pub async fn run(r: &RenewArgs) -> Result<()> {
    let res = replay(r).await;
    if let Some(path) = &r.metrics_file {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let previous = std::fs::read_to_string(path).unwrap_or_default();
        let text = metrics_text(&previous, now, res.is_ok());
        // A monitoring file that cannot be written must not hide the renewal's own result.
        if let Err(e) = lvs_shared::atomic::write(path, text.as_bytes(), 0o644) {
            tracing::error!("cannot write --metrics-file {}: {e}", path.display());
            if res.is_ok() {
                return Err(usage(
                    format!("--metrics-file {}", path.display()),
                    format!("cannot write: {e}"),
                    "point it at a writable directory (node_exporter's textfile collector \
                     directory; under systemd add it to ReadWritePaths=)",
                ));
            }
        }
    }
    res
}

/// The textfile-collector file after one run: the last success is carried over from the
/// previous file when this run failed.
pub fn metrics_text(previous: &str, now: u64, ok: bool) -> String {
    const LAST_OK: &str = "lvs_cert_renewal_last_success_timestamp_seconds";
    let last_ok = if ok {
        now
    } else {
        previous
            .lines()
            .find_map(|l| l.strip_prefix(LAST_OK)?.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    };
    format!(
        "# HELP lvs_cert_renewal_success 1 when the last `lvs-cert renew` succeeded (renewed, \
         installed or not due), 0 when it failed.\n\
         # TYPE lvs_cert_renewal_success gauge\n\
         lvs_cert_renewal_success {}\n\
         # HELP lvs_cert_renewal_last_run_timestamp_seconds When `lvs-cert renew` last ran, unix seconds.\n\
         # TYPE lvs_cert_renewal_last_run_timestamp_seconds gauge\n\
         lvs_cert_renewal_last_run_timestamp_seconds {now}\n\
         # HELP {LAST_OK} When `lvs-cert renew` last succeeded, unix seconds; 0 never.\n\
         # TYPE {LAST_OK} gauge\n\
         {LAST_OK} {last_ok}\n",
        u8::from(ok)
    )
}

async fn replay(r: &RenewArgs) -> Result<()> {
    let local = r.state_dir.join("renewal.json");
    let (path, from_shared) = if local.exists() {
        (local, false)
    } else if let Some(s) = &r.shared_dir {
        (s.join("renewal.json"), true)
    } else {
        return Err(usage(
            format!("--state-dir {}", r.state_dir.display()),
            "no renewal.json: `lvs-cert acme` has not run on this node",
            "run `lvs-cert acme ...` once, or pass --shared-dir DIR to use the pool's record",
        ));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        usage(
            path.display().to_string(),
            format!("cannot read: {e}"),
            "run `lvs-cert acme ...` once",
        )
    })?;
    let mut a: AcmeArgs = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a renewal record; re-run `lvs-cert acme`",
            path.display()
        )
    })?;
    a.force = r.force;
    a.state_dir = r.state_dir.clone();
    if from_shared {
        a.node = None; // the record was written by another node: this one is found by hostname
    }
    crate::acme::run(&a).await
}

#[cfg(test)]
mod tests {
    use super::metrics_text;

    #[test]
    fn failure_keeps_the_last_success() {
        let ok = metrics_text("", 1000, true);
        assert!(ok.contains("\nlvs_cert_renewal_success 1\n"), "{ok}");
        assert!(ok.contains("\nlvs_cert_renewal_last_success_timestamp_seconds 1000\n"));
        let bad = metrics_text(&ok, 2000, false);
        assert!(bad.contains("\nlvs_cert_renewal_success 0\n"), "{bad}");
        assert!(bad.contains("\nlvs_cert_renewal_last_run_timestamp_seconds 2000\n"));
        assert!(bad.contains("\nlvs_cert_renewal_last_success_timestamp_seconds 1000\n"));
        let never = metrics_text("", 3000, false);
        assert!(never.contains("\nlvs_cert_renewal_last_success_timestamp_seconds 0\n"));
    }
}
