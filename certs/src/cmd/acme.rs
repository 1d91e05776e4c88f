//! `lvs-cert acme`: nothing to do when the installed or published certificate is fresh;
//! otherwise the pool lock, a re-check under it, an order per certificate still missing
//! (`crate::acme`), publish (while the lock is still ours), install here, and the records
//! `renew` uses.

use crate::acme::{self, Plan};
use crate::cli::AcmeArgs;
use crate::install;
use crate::names::CertSpec;
use crate::{lock, store, verify, webroot};
use anyhow::{anyhow, Context, Result};
use std::time::SystemTime;

fn published(p: &Plan, s: &CertSpec) -> Option<store::Found> {
    let dir = store::label_dir(&p.shared, &s.label)?;
    store::newest_valid(&dir, store::Links::Refuse, &s.names, &p.trust)
}

pub async fn run(a: &AcmeArgs) -> Result<()> {
    let p = acme::plan(a).await?;
    let chdir = webroot::prepare(&a.webroot)?;
    let start = SystemTime::now();
    let now = verify::now();

    // Fast path without the lock: nothing due anywhere.
    let local_fresh = p
        .mine
        .as_ref()
        .and_then(|m| p.target.current(&m.names))
        .filter(|c| !c.due(now));
    let local_fresh = match local_fresh {
        Some(c) if !a.force && acme::ari_says_due(a, &p, &c).await == Some(true) => {
            println!("the CA's renewal info (ARI) asks for early renewal");
            None
        }
        other => other,
    };
    let satisfied = |s: &CertSpec| {
        (p.mine.as_ref() == Some(s) && local_fresh.is_some())
            || published(&p, s).is_some_and(|f| !f.leaf.due(now))
    };
    if !a.force && p.specs.iter().all(satisfied) {
        if let Some(c) = &local_fresh {
            println!(
                "nothing to do: {} covers all names and is not due (expires {}); use --force to issue anyway",
                p.target.cert.display(),
                verify::fmt_time(c.not_after)
            );
        } else {
            install_mine(&p, None)?;
        }
        record(a, &p)?;
        return Ok(());
    }

    let guard = lock::acquire(&p.shared, p.lock_stale, p.lock_wait).await?;
    let mut issued_mine: Option<(String, String)> = None;
    // Re-check under the lock: another node may have issued while we waited.
    let mut todo = Vec::new();
    for s in &p.specs {
        let fresh = published(&p, s).filter(|f| {
            let new_since_start = std::fs::metadata(&f.dir)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= start);
            new_since_start || (!a.force && !f.leaf.due(now))
        });
        let local_ok = !a.force && p.mine.as_ref() == Some(s) && local_fresh.is_some();
        if fresh.is_none() && !local_ok {
            todo.push(s.clone());
        } else {
            tracing::info!("{}: a fresh certificate is already published", s.label);
        }
    }
    if !todo.is_empty() {
        let mut acct = acme::account(a, &p).await?;
        for s in &todo {
            // The certificate this one replaces, for ARI's `replaces` (renewals exempt
            // from Let's Encrypt's rate limits).
            let prev = published(&p, s).map(|f| f.leaf).or_else(|| {
                (p.mine.as_ref() == Some(s))
                    .then(|| p.target.current(&s.names))
                    .flatten()
            });
            let (chain, key, leaf) = match acme::issue(&acct, &p, s, &chdir, prev.as_ref()).await {
                // The CA forgot the saved account (a test CA restarted, or it was
                // deactivated): register anew once and retry.
                Err(e) if format!("{e:#}").contains("accountDoesNotExist") => {
                    let path = acme::account_path(a, &p);
                    eprintln!(
                        "the CA does not know the account in {}; registering a new one",
                        path.display()
                    );
                    let _ = std::fs::remove_file(&path);
                    acct = acme::account(a, &p).await?;
                    acme::issue(&acct, &p, s, &chdir, prev.as_ref()).await?
                }
                r => r?,
            };
            guard.ensure_held()?;
            let dir = store::publish(&p.shared, &s.label, &chain, &key, &leaf)?;
            if p.mine.as_ref() == Some(s) {
                issued_mine = Some((chain.clone(), key.clone()));
            }
            println!(
                "issued {} for {} (expires {}), published in {}",
                leaf.serial,
                s.names.join(", "),
                verify::fmt_time(leaf.not_after),
                dir.display()
            );
        }
    } else {
        println!("another node already issued a fresh certificate; installing it");
    }
    drop(guard);
    install_mine(&p, issued_mine)?;
    record(a, &p)?;
    Ok(())
}

/// Installs this host's certificate from the shared directory.
/// `fresh` is the pair this run just issued (installed as is, not searched for again).
fn install_mine(p: &Plan, fresh: Option<(String, String)>) -> Result<()> {
    let Some(m) = &p.mine else {
        println!(
            "this host is not one of the nodes (--node/hostname); nothing installed here. \
             On each node: lvs-cert install --xrootd --from {}",
            p.shared.display()
        );
        return Ok(());
    };
    let (chain, key) = match fresh {
        Some(pair) => pair,
        None => {
            let f = published(p, m).ok_or_else(|| {
                anyhow!(
                    "no valid certificate for {} in {}",
                    m.label,
                    p.shared.display()
                )
            })?;
            (f.chain, f.key)
        }
    };
    match install::install(&p.target, &chain, &key, &m.names, &p.trust, p.hook.as_ref())? {
        install::Outcome::Installed => install::print_sysconfig(&p.target),
        install::Outcome::Unchanged => println!(
            "{} is already the newest certificate",
            p.target.cert.display()
        ),
    }
    Ok(())
}

/// The renewal records. This node's own (`STATE_DIR/renewal.json`, local, root-only) is
/// the whole run, hook and paths included, and `renew` replays it. The pool's
/// (`SHARED_DIR/renewal.json`) holds the names only: whoever can write the share must not
/// be able to choose a command, a path or a CA that root on every node then uses.
fn record(a: &AcmeArgs, p: &Plan) -> Result<()> {
    let mut r = a.clone();
    r.force = false;
    let json = serde_json::to_vec_pretty(&r)?;
    acme::create_private_dir(&a.state_dir)?;
    lvs_shared::atomic::write(&a.state_dir.join("renewal.json"), &json, 0o600)
        .with_context(|| format!("writing {}/renewal.json", a.state_dir.display()))?;
    let names = serde_json::to_vec_pretty(&store::SharedNames {
        vip: p.pool.vip.clone(),
        alt: p.pool.nodes.clone(),
    })?;
    crate::sharedfs::Dir::open(&p.shared)
        .and_then(|d| d.write_atomic("renewal.json", &names, 0o644))
        .with_context(|| format!("writing {}/renewal.json", p.shared.display()))?;
    Ok(())
}
