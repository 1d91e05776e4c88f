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
    let t = Target::new(a.cert.clone(), a.key.clone(), a.xrootd);
    let f = install::from_dir(&a.from, &names).ok_or_else(|| {
        anyhow!(
            "no valid certificate{} under {} (checked: parses, key matches, names covered, not expired); the installed one is untouched",
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
    match install::install(&t, &f.chain, &f.key, &names, a.deploy_hook.as_deref())? {
        install::Outcome::Installed => install::print_sysconfig(&t),
        install::Outcome::Unchanged => println!("{} is already this certificate", t.cert.display()),
    }
    Ok(())
}
