//! `cert.names`, `cert.expiry`: the host certificate GridFTP presents must name the VIP
//! hostname (clients connect by that name and check it), and must not be about to expire.
//! Parsing and name matching are the daemon's certificate check (`checks::certificate`).
//!
//! `cert.client_auth`: a certificate XRootD or WebDAV presents as the client in third-party
//! copy must allow clientAuth (`lvs_shared::tpc`). Judged for every `certificate` check with
//! `tpc_client = true`; without one, when the node runs an `xrootd` or `webdav` check, for
//! the certificate XRootD's config names (`xrd.tls`, or XrdHttp's `http.cert`), else the
//! host certificate (XRootD and XrdHttp present the host certificate). A warning:
//! the node serves every client, only its copies to other storage fail.

use super::Finding;
use crate::health::checks::certificate;
use crate::site::gridftp_conf::GridftpSettings;
use crate::site::gridftp_conf::{Paths, DEFAULT_CERTS};
use lvs_shared::config::check::CheckKind;
use lvs_shared::config::NodeConfig;
use std::path::PathBuf;

pub const NAMES: &str = "cert.names";
pub const EXPIRY: &str = "cert.expiry";
pub const CLIENT_AUTH: &str = "cert.client_auth";
pub const WARN_DAYS: i64 = 14;

/// The certificate GridFTP uses: --cert, else X509_USER_CERT, else the first default
/// that exists. Returns the path and how it was chosen.
fn choose(paths: &Paths, gf: &GridftpSettings) -> (Option<PathBuf>, String) {
    if let Some(p) = &paths.cert {
        return (Some(p.clone()), "--cert".into());
    }
    if let Some(s) = gf.x509_user_cert() {
        return (
            Some(PathBuf::from(&s.value)),
            format!("X509_USER_CERT at {}", s.source),
        );
    }
    match DEFAULT_CERTS.iter().map(PathBuf::from).find(|p| p.exists()) {
        Some(p) => (Some(p), "default location".into()),
        None => (None, format!("none of {}", DEFAULT_CERTS.join(", "))),
    }
}

pub fn findings(cfg: &NodeConfig, paths: &Paths, gf: &GridftpSettings) -> Vec<Finding> {
    let mut out = names_and_expiry(cfg, paths, gf);
    out.extend(client_auth(cfg, paths, gf));
    out
}

/// `cert.client_auth` for each certificate the node presents as a TPC client.
fn client_auth(cfg: &NodeConfig, paths: &Paths, gf: &GridftpSettings) -> Vec<Finding> {
    let mut targets: Vec<(PathBuf, String)> = cfg
        .daemon
        .checks
        .iter()
        .filter_map(|c| match &c.kind {
            CheckKind::Certificate {
                cert,
                tpc_client: true,
                ..
            } => Some((
                cert.clone(),
                format!("[[check]] {} (tpc_client = true)", c.name),
            )),
            _ => None,
        })
        .collect();
    if targets.is_empty() {
        let serves_tpc = cfg
            .daemon
            .checks
            .iter()
            .find(|c| matches!(c.kind, CheckKind::Xrootd { .. } | CheckKind::Webdav { .. }));
        // XRootD's own `xrd.tls` (or XrdHttp's `http.cert`) names the certificate it
        // presents; without one it is the host certificate GridFTP would use.
        let named = paths
            .xrootd_conf
            .iter()
            .filter_map(|f| crate::site::xrootd_conf::load(f).ok())
            .find_map(|dirs| crate::site::xrootd_conf::tls_cert(&dirs))
            .map(|(p, at)| (Some(p), format!("named at {at}")));
        match (serves_tpc, named.unwrap_or_else(|| choose(paths, gf))) {
            (Some(c), (Some(p), how)) => targets.push((
                p,
                format!(
                    "the host certificate ({how}), which XRootD and XrdHttp present; the node runs the {} check {}",
                    c.kind.as_str(),
                    c.name
                ),
            )),
            _ => return Vec::new(),
        }
    }
    targets
        .into_iter()
        .map(|(path, why)| {
            let info = match std::fs::read(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|d| certificate::parse(&d))
            {
                Ok(i) => i,
                Err(e) => {
                    return Finding::warn(
                        CLIENT_AUTH,
                        format!("cannot judge the TPC client certificate {}", path.display()),
                        format!("{e} ({why})"),
                        format!("install it; {}", certificate::TPC_FIX),
                    )
                }
            };
            match info.tpc_client_problem() {
                None => Finding::ok(
                    CLIENT_AUTH,
                    "the TPC client certificate allows clientAuth",
                    format!(
                        "{} ({why}): {}",
                        path.display(),
                        info.eku
                            .as_ref()
                            .map(|v| v.join(", "))
                            .unwrap_or_else(|| "no extendedKeyUsage (every purpose)".into())
                    ),
                ),
                Some(p) => Finding::warn(
                    CLIENT_AUTH,
                    format!(
                        "the TPC client certificate {} does not allow clientAuth",
                        path.display()
                    ),
                    format!("{why}: {p}"),
                    certificate::TPC_FIX,
                ),
            }
        })
        .collect()
}

fn names_and_expiry(cfg: &NodeConfig, paths: &Paths, gf: &GridftpSettings) -> Vec<Finding> {
    let hostnames: Vec<String> = cfg.vips.iter().filter_map(|v| v.hostname.clone()).collect();
    let (path, how) = choose(paths, gf);
    let issue = "request one whose names include the VIP hostname and this node's own name, \
                 e.g. `lvs-cert request` (see docs/certs.md) or osg-cert-request --hostname VIP-NAME --altname NODE-NAME";
    let Some(path) = path else {
        let f = Finding::warn(
            NAMES,
            "no host certificate found",
            format!(
                "looked at {how}. GridFTP with GSI needs a host certificate; clients check that it \
                 names the host they connected to, the VIP hostname."
            ),
            format!("install it, or point doctor at it with --cert PATH; {issue}"),
        );
        return vec![f, Finding::ok(EXPIRY, "no certificate to check", "")];
    };
    let info = match std::fs::read(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|d| certificate::parse(&d))
    {
        Ok(i) => i,
        Err(e) => {
            let sev = if path.exists() {
                Finding::error(
                    NAMES,
                    format!("unusable host certificate {}", path.display()),
                    e,
                    issue,
                )
            } else {
                Finding::warn(
                    NAMES,
                    format!("host certificate {} is missing", path.display()),
                    format!("{e} ({how})"),
                    format!("install it; {issue}"),
                )
            };
            return vec![sev, Finding::ok(EXPIRY, "no certificate to check", "")];
        }
    };
    let names_f = if hostnames.is_empty() {
        Finding::warn(
            NAMES,
            "no [[vip]] hostname configured: certificate names not checked",
            format!("{} names {}", path.display(), info.names.join(", ")),
            "set `hostname = \"gridftp.example.org\"` in each [[vip]] of the node config",
        )
    } else {
        let missing = info.uncovered(&hostnames);
        if missing.is_empty() {
            Finding::ok(
                NAMES,
                format!("the host certificate covers {}", hostnames.join(", ")),
                format!("{} ({how}) names {}", path.display(), info.names.join(", ")),
            )
        } else {
            Finding::error(
                NAMES,
                format!(
                    "the host certificate does not name {}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "{} ({how}) names only {}.\nClients connect to the VIP hostname and reject a \
                     certificate that does not name it (GSI/TLS host name check), so every \
                     transfer through the VIP fails authentication.",
                    path.display(),
                    info.names.join(", ")
                ),
                issue,
            )
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = (info.not_after - now).div_euclid(86400);
    let renew = "renew it (`lvs-cert renew`, or the lvs-cert-renew timer) and restart GridFTP";
    let expiry_f = if now < info.not_before {
        Finding::error(
            EXPIRY,
            "the host certificate is not valid yet",
            "check the clock (NTP)",
            "fix the clock or reissue",
        )
    } else if now >= info.not_after {
        Finding::error(
            EXPIRY,
            "the host certificate has expired",
            path.display().to_string(),
            renew,
        )
    } else if days < WARN_DAYS {
        Finding::warn(
            EXPIRY,
            format!("the host certificate expires in {days} day(s)"),
            format!("{} expires within {WARN_DAYS} days", path.display()),
            renew,
        )
    } else {
        Finding::ok(EXPIRY, format!("valid for {days} more days"), "")
    };
    vec![names_f, expiry_f]
}
