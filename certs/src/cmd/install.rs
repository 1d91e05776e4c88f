//! `lvs-cert install --from DIR`: the newest valid certificate found there, installed.

use crate::cli::InstallArgs;
use crate::error::usage;
use crate::install::{self, Target};
use anyhow::{anyhow, Result};
use lvs_shared::hostname;

pub fn run(a: &InstallArgs) -> Result<()> {
    if !a.from.is_dir() {
        return Err(usage(
            format!("--from {}", a.from.display()),
            "not a directory",
            "pass the shared directory or a directory with fullchain.pem and privkey.pem",
        ));
    }
    let mut names = Vec::new();
    let name = match (&a.name, a.xrootd) {
        (Some(n), _) => Some(n.clone()),
        (None, true) => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok()),
        (None, false) => None,
    };
    names.extend(name);
    names.extend(a.alt.iter().cloned());
    let names = hostname::validate_set(&names)
        .map_err(|p| usage("--name/--alt", p, "give each name once, as a DNS name"))?;
    let hook_timeout = lvs_shared::duration::parse(&a.deploy_hook_timeout).map_err(|p| {
        usage(
            "--deploy-hook-timeout",
            p,
            "write a duration such as 30s, 5m",
        )
    })?;
    let trust = crate::verify::Trust::load(a.issuer_ca.as_deref(), "--issuer-ca")?;
    let hook = a.deploy_hook.clone().map(|cmd| install::Hook {
        cmd,
        timeout: hook_timeout,
    });
    let t = Target::new(a.cert.clone(), a.key.clone(), a.xrootd);
    let f = install::from_dir(&a.from, &names, &trust).ok_or_else(|| {
        anyhow!(
            "no valid certificate{} under {} (checked: parses, key matches, names covered, not expired, chains to --issuer-ca or the system trust store; -v names each one skipped); the installed one is untouched",
            if names.is_empty() { String::new() } else { format!(" for {}", names.join(", ")) },
            a.from.display()
        )
    })?;
    println!(
        "newest valid: {} (serial {}, expires {})",
        f.dir.display(),
        f.leaf.serial,
        crate::verify::fmt_time(f.leaf.not_after)
    );
    match install::install(&t, &f.chain, &f.key, &names, &trust, hook.as_ref())? {
        install::Outcome::Installed => install::print_sysconfig(&t),
        install::Outcome::Unchanged => println!("{} is already this certificate", t.cert.display()),
    }
    Ok(())
}
