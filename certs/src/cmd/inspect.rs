//! `lvs-cert inspect`: what a certificate says, and a monitoring verdict (exit 1 when a
//! name is missing, the key does not match, it expires within --days, or, with
//! --issuer-ca or --system-trust, it does not chain to that trust). A certificate without
//! clientAuth gets a warning, not a failure: XRootD and WebDAV cannot present it as the
//! client in third-party copy (see `lvs_shared::tpc`).
//!
//! Trust is checked only when asked for: a file that merely parses and links can be planted
//! by anyone who can write it, so a monitor that must tell a real certificate from such a
//! file passes the root it expects.

use crate::cli::InspectArgs;
use crate::error::usage;
use crate::verify;
use anyhow::Result;
use lvs_shared::hostname;

/// Returns the exit code.
pub fn run(a: &InspectArgs) -> Result<u8> {
    let pem = std::fs::read(&a.cert).map_err(|e| {
        usage(
            format!("{}", a.cert.display()),
            format!("cannot read: {e}"),
            "pass a PEM certificate file",
        )
    })?;
    let chain = verify::parse_chain(&pem).map_err(|e| {
        usage(
            format!("{}", a.cert.display()),
            format!("{e:#}"),
            "pass a PEM certificate (BEGIN CERTIFICATE)",
        )
    })?;
    let leaf = &chain[0];
    let mut want: Vec<String> = a.vip.iter().cloned().collect();
    want.extend(a.alt.iter().cloned());
    let want = hostname::validate_set(&want)
        .map_err(|p| usage("--vip/--alt", p, "give each name once, as a DNS name"))?;
    let trust = if a.system_trust {
        Some(verify::Trust::System)
    } else {
        a.issuer_ca
            .as_deref()
            .map(|f| verify::Trust::load(Some(f), "--issuer-ca"))
            .transpose()?
    };
    let mut problems = Vec::new();
    let key_match = match &a.key {
        None => None,
        Some(k) => {
            let pem = std::fs::read_to_string(k).map_err(|e| {
                usage(
                    format!("--key {}", k.display()),
                    format!("cannot read: {e}"),
                    "pass the PEM private key",
                )
            })?;
            let m = verify::key_public(&pem).map_err(|e| {
                usage(
                    format!("--key {}", k.display()),
                    format!("{e:#}"),
                    "pass a PEM private key",
                )
            })? == leaf.public_key;
            if !m {
                problems.push(format!("the key {} does not match", k.display()));
            }
            Some(m)
        }
    };
    let missing: Vec<String> = leaf.missing(&want).into_iter().cloned().collect();
    if !missing.is_empty() {
        problems.push(format!("missing names: {}", missing.join(", ")));
    }
    let now = verify::now();
    let days_left = (leaf.not_after - now) as f64 / 86400.0;
    if now >= leaf.not_after {
        problems.push("expired".into());
    } else if let Some(d) = a.days {
        if days_left < d as f64 {
            problems.push(format!("expires within {d} days ({days_left:.1} left)"));
        }
    }
    if let Err(e) = verify::check_links(&chain) {
        problems.push(format!("{e:#}"));
    }
    // Not a problem (the exit code stays): only a node that presents this certificate as a
    // TPC client needs clientAuth, and inspect cannot know whether it does.
    let client_auth = lvs_shared::tpc::client_auth_problem(leaf.eku.as_deref());
    let trusted = trust.as_ref().map(|t| {
        let r = verify::check_trust(&pem, &want, t);
        if let Err(e) = &r {
            problems.push(format!("not trusted: {e:#}"));
        }
        (r.is_ok(), t.describe())
    });
    if a.json {
        let v = serde_json::json!({
            "subject": leaf.subject,
            "common_name": leaf.common_name,
            "sans": leaf.sans,
            "issuer": leaf.issuer,
            "serial": leaf.serial,
            "not_before": verify::fmt_time(leaf.not_before),
            "not_after": verify::fmt_time(leaf.not_after),
            "days_left": (days_left * 10.0).round() / 10.0,
            "due_for_renewal": leaf.due(now),
            "chain_length": chain.len(),
            "key_match": key_match,
            "trusted": trusted.as_ref().map(|t| t.0),
            "missing": missing,
            "extended_key_usage": leaf.eku,
            "client_auth": client_auth.is_none(),
            "warnings": client_auth
                .iter()
                .map(|p| format!("{p}; fix: {}", lvs_shared::tpc::CLIENT_AUTH_FIX))
                .collect::<Vec<_>>(),
            "problems": problems,
            "ok": problems.is_empty(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("subject:    {}", leaf.subject);
        println!("SANs:       {}", leaf.sans.join(", "));
        println!("issuer:     {}", leaf.issuer);
        println!("serial:     {}", leaf.serial);
        println!("notBefore:  {}", verify::fmt_time(leaf.not_before));
        println!(
            "notAfter:   {} ({days_left:.1} days left{})",
            verify::fmt_time(leaf.not_after),
            if leaf.due(now) {
                ", due for renewal"
            } else {
                ""
            }
        );
        println!("chain:      {} certificate(s)", chain.len());
        println!(
            "key usage:  {} (clientAuth {}, needed by a TPC client)",
            match &leaf.eku {
                None => "no extendedKeyUsage (every purpose)".to_string(),
                Some(v) if v.is_empty() => "empty extendedKeyUsage".to_string(),
                Some(v) => v.join(", "),
            },
            if client_auth.is_none() {
                "allowed"
            } else {
                "MISSING"
            }
        );
        if let Some(m) = key_match {
            println!("key match:  {}", if m { "yes" } else { "NO" });
        }
        match &trusted {
            Some((ok, by)) => println!("trusted:    {} ({by})", if *ok { "yes" } else { "NO" }),
            None => println!("trusted:    not checked (--issuer-ca PEM or --system-trust)"),
        }
        if let Some(p) = &client_auth {
            println!("WARNING:    {p}");
            println!("  fix:      {}", lvs_shared::tpc::CLIENT_AUTH_FIX);
        }
        for p in &problems {
            println!("PROBLEM:    {p}");
        }
        if problems.is_empty() {
            println!("OK");
        }
    }
    Ok(if problems.is_empty() {
        0
    } else {
        crate::error::EXIT_FAIL
    })
}
