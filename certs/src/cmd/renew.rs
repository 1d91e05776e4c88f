//! `lvs-cert renew`: replays an `acme` run. `acme` itself does nothing when the
//! certificate is not due, takes the pool lock, and installs a certificate another node
//! just issued, so this is safe from a timer on every node.
//!
//! What it replays comes from this node only: its own record (`STATE_DIR/renewal.json`,
//! written by `acme` here) or its config file (`/etc/lvs-cert/renew.toml`, the `acme`
//! flags as TOML keys). The pool's shared record supplies the names and nothing else: a
//! writer of the share must not choose the command, the paths or the CA that root runs
//! and uses on every node. With neither record nor config, there is nothing to renew and
//! the timer's run is a clean no-op.
//!
//! External account binding: the stored account is bound already, so a renewal needs no
//! EAB. The record keeps `--eab-file`'s path (never the key; `--eab-kid`/`--eab-hmac-key`
//! are not recorded), read only if the account must be registered again (state directory
//! lost, or the CA forgot the account).

use crate::cli::{AcmeArgs, RenewArgs};
use crate::error::{usage, Usage};
use crate::store::SharedNames;
use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/lvs-cert/renew.toml";

/// Keys of the config file that are not `acme` flags of a renewal.
const NOT_IN_CONFIG: &[&str] = &["force", "state_dir", "help", "version", "verbose"];
/// Keys whose value is a number.
const NUMBERS: &[&str] = &["self_check_rounds", "http_port"];

#[derive(Parser, Debug)]
#[command(name = "renew.toml")]
struct FromConfig {
    #[command(flatten)]
    acme: AcmeArgs,
}

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
    let (mut a, config) = if local.exists() {
        (read_local(&local)?, None)
    } else {
        let (cfg, explicit) = match &r.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        if cfg.exists() {
            (load_config(&cfg, r.shared_dir.as_deref())?, Some(cfg))
        } else if explicit {
            return Err(usage(
                format!("--config {}", cfg.display()),
                "does not exist",
                "write it (the `lvs-cert acme` flags as TOML keys, see docs/certs.md) or leave --config out",
            ));
        } else if r.shared_dir.is_some() {
            return Err(usage(
                "--shared-dir",
                format!(
                    "the pool's record gives the names only; this node has no renewal settings ({} has no renewal.json and {DEFAULT_CONFIG} does not exist)",
                    r.state_dir.display()
                ),
                format!("write {DEFAULT_CONFIG} with at least `webroot = \"...\"` (docs/certs.md, renew), or run `lvs-cert acme ...` once on this node"),
            ));
        } else {
            println!(
                "nothing to renew: `lvs-cert acme` has not run on this node ({} has no renewal.json) and {DEFAULT_CONFIG} does not exist",
                r.state_dir.display()
            );
            return Ok(());
        }
    };
    a.force = r.force;
    a.state_dir = r.state_dir.clone();
    match &config {
        None => crate::cmd::acme::run(&a).await,
        Some(cfg) => crate::cmd::acme::run(&a)
            .await
            .map_err(|e| in_config(e, cfg)),
    }
}

fn read_local(path: &Path) -> Result<AcmeArgs> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(
            path.display().to_string(),
            format!("cannot read: {e}"),
            "run `lvs-cert acme ...` once",
        )
    })?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a renewal record; re-run `lvs-cert acme`",
            path.display()
        )
    })
}

/// A usage error about a flag, renamed to the config key it came from.
fn in_config(e: anyhow::Error, cfg: &Path) -> anyhow::Error {
    let Some(u) = e.downcast_ref::<Usage>() else {
        return e;
    };
    if !u.what.starts_with("--") {
        return e;
    }
    let (flag, rest) = u.what.split_once(' ').unwrap_or((&u.what, ""));
    let key = flag.replace("--", "").replace('-', "_");
    usage(
        format!("{}: {key} {rest}", cfg.display())
            .trim_end()
            .to_string(),
        u.problem.clone(),
        u.fix.replace("--", ""),
    )
}

/// Reads the config file into the `acme` arguments it stands for: each key is a flag
/// (`deploy_hook` is `--deploy-hook`), so the checks and defaults are the command line's.
/// Without names in the file, the names come from the shared record.
fn load_config(cfg: &Path, shared_override: Option<&Path>) -> Result<AcmeArgs> {
    let what = cfg.display().to_string();
    let text = std::fs::read_to_string(cfg).map_err(|e| {
        usage(
            &what,
            format!("cannot read: {e}"),
            "make it readable by root",
        )
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        usage(
            &what,
            format!("not TOML: {e}"),
            "write `key = \"value\"` lines, e.g. webroot = \"/mnt/nfsshare/webroot\"",
        )
    })?;
    let cmd = FromConfig::command();
    let mut argv: Vec<String> = vec!["renew.toml".into()];
    for (k, v) in &table {
        if k == "eab_kid" || k == "eab_hmac_key" {
            return Err(usage(
                format!("{what}: {k}"),
                "the EAB key is not kept in the renewal settings",
                "put kid and hmac_key in a file of their own (mode 0600) and set eab_file = \"PATH\"; \
                 an account that is already registered needs no EAB at all",
            ));
        }
        let flag = k.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
            .filter(|_| !NOT_IN_CONFIG.contains(&k.as_str()) && !k.contains('-'));
        let Some(arg) = arg else {
            return Err(usage(
                format!("{what}: {k}"),
                "is not a renewal setting",
                "use the `lvs-cert acme` flags with `_` for `-` (e.g. deploy_hook, webroot, shared_dir, cert, key); `force` and `state_dir` are renew's own flags",
            ));
        };
        let is_flag = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let bad = |want: &str| {
            usage(
                format!("{what}: {k}"),
                format!("expected {want}"),
                format!(
                    "write e.g. {k} = {}",
                    if want.starts_with("true") {
                        "true"
                    } else if want.contains("number") {
                        "80"
                    } else {
                        "\"...\""
                    }
                ),
            )
        };
        let one = |v: &toml::Value| -> Result<String> {
            match v {
                toml::Value::String(s) if !NUMBERS.contains(&k.as_str()) => Ok(s.clone()),
                toml::Value::Integer(i) if NUMBERS.contains(&k.as_str()) => Ok(i.to_string()),
                _ if NUMBERS.contains(&k.as_str()) => Err(bad("a number")),
                _ => Err(bad("a string")),
            }
        };
        match v {
            toml::Value::Boolean(b) if is_flag => {
                if *b {
                    argv.push(format!("--{flag}"));
                }
            }
            _ if is_flag => return Err(bad("true or false")),
            toml::Value::Array(items) => {
                for i in items {
                    argv.push(format!("--{flag}={}", one(i)?));
                }
            }
            v => argv.push(format!("--{flag}={}", one(v)?)),
        }
    }
    let mut a = FromConfig::try_parse_from(&argv)
        .map_err(|e| {
            usage(
                &what,
                e.to_string().lines().next().unwrap_or("").replace("--", ""),
                "fix the value (keys are the `lvs-cert acme` flags with `_` for `-`)",
            )
        })?
        .acme;
    if let Some(s) = shared_override {
        a.shared_dir = Some(s.to_path_buf());
    }
    if a.pool.vip.is_none() && a.pool.alt.is_empty() && a.pool.hosts_file.is_none() {
        let shared = match &a.shared_dir {
            Some(s) => s.clone(),
            None => a
                .webroot
                .parent()
                .map(|p| p.join("lvs-cert"))
                .unwrap_or_default(),
        };
        let names = read_shared_names(&shared.join("renewal.json"))?;
        a.pool.vip = Some(names.vip);
        a.pool.alt = names.alt;
    }
    Ok(a)
}

/// The names from the pool's record; every other field is ignored (records written by
/// older versions held the whole command line).
fn read_shared_names(p: &Path) -> Result<SharedNames> {
    let what = p.display().to_string();
    // On the share: no symlink, no FIFO, bounded (crate::sharedfs).
    let text = crate::sharedfs::read_text(p, crate::sharedfs::MAX_RECORD).map_err(|e| {
        usage(
            &what,
            format!("cannot read the pool's names: {e}"),
            "set vip and alt in the config, or run `lvs-cert acme` once on any node",
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| usage(&what, format!("not JSON: {e}"), "run `lvs-cert acme` again"))?;
    let names = v.get("pool").unwrap_or(&v);
    let vip = names.get("vip").and_then(|x| x.as_str());
    let alt: Option<Vec<String>> = names.get("alt").and_then(|x| x.as_array()).map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    });
    match (vip, alt) {
        (Some(vip), Some(alt)) => Ok(SharedNames {
            vip: vip.to_string(),
            alt,
        }),
        _ => Err(usage(
            &what,
            "holds no `vip` and `alt` names",
            "set vip and alt in the config, or run `lvs-cert acme` once on any node",
        )),
    }
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
