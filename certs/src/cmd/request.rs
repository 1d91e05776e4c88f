//! `lvs-cert request`: keys and CSRs for a CA (InCommon, an IGTF CA...), replacing
//! `osg-cert-request` and `osg-gridadmin-cert-request -f load-balanced-hosts.txt`.

use crate::cli::RequestArgs;
use crate::csr;
use crate::error::usage;
use crate::names::Pool;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub fn run(a: &RequestArgs) -> Result<()> {
    let pool = Pool::new(
        a.pool.vip.as_deref(),
        &a.pool.alt,
        a.pool.hosts_file.as_deref(),
    )?;
    a.subject.validate()?;
    if a.out.exists() && !a.out.is_dir() {
        return Err(usage(
            format!("--out {}", a.out.display()),
            "exists and is not a directory",
            "pass a directory (it is created, 0700, when missing)",
        ));
    }
    let specs = pool.specs(a.xrootd);
    let files: Vec<(PathBuf, PathBuf)> = specs
        .iter()
        .map(|s| {
            (
                a.out.join(format!("{}.key", s.label)),
                a.out.join(format!("{}.csr", s.label)),
            )
        })
        .collect();
    if !a.force {
        for (k, c) in &files {
            for f in [k, c] {
                if f.exists() {
                    return Err(usage(
                        f.display().to_string(),
                        "already exists (a private key is never overwritten silently)",
                        "move it away, pick another --out, or pass --force",
                    ));
                }
            }
        }
    }
    // Created only now that the input is known good; removed again if this run fails.
    let created = create_out_dir(&a.out)?;
    let mut written: Vec<PathBuf> = Vec::new();
    let res = (|| -> Result<()> {
        for (s, (kf, cf)) in specs.iter().zip(&files) {
            let key = csr::generate_key(a.key_type)?;
            let (_, pem) =
                csr::make_csr(&s.names, &a.subject, &key, csr::Purposes::ServerAndClient)?;
            written.push(kf.clone());
            lvs_shared::atomic::write(kf, key.serialize_pem().as_bytes(), 0o600)
                .with_context(|| format!("writing {}", kf.display()))?;
            written.push(cf.clone());
            lvs_shared::atomic::write(cf, pem.as_bytes(), 0o644)
                .with_context(|| format!("writing {}", cf.display()))?;
            println!(
                "{}: key {} (0600), CSR {}",
                s.names.join(", "),
                kf.display(),
                cf.display()
            );
        }
        Ok(())
    })();
    if res.is_err() {
        for f in &written {
            let _ = std::fs::remove_file(f);
        }
        for d in created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        return res;
    }
    println!();
    println!("Next: submit each .csr to your CA (e.g. InCommon via your institution's RA) and keep the .key private.");
    println!("Each CSR asks for serverAuth and clientAuth: XRootD and WebDAV present the host certificate as the");
    println!("client in third-party copy. Pick a profile that keeps clientAuth: InCommon's IGTF server certificate,");
    println!("GEANT TCS's IGTF grid host certificate, or your national grid CA; public TLS profiles (Let's Encrypt");
    println!("since February 2026) issue serverAuth only. Check with: lvs-cert inspect CERT (docs/certs.md).");
    if a.xrootd {
        println!("Install each node's signed certificate on that node: lvs-cert install --xrootd --from DIR --name NODE");
        println!("(it goes to /etc/grid-security/hostcert.pem and hostkey.pem)");
    } else {
        println!(
            "Install the signed certificate on every node: lvs-cert install --from DIR --name {}",
            pool.vip
        );
        println!("(DIR holding fullchain.pem or cert.pem plus privkey.pem; it goes to /etc/grid-security/gridftp/)");
    }
    Ok(())
}

/// Creates `out` and any missing parents, each 0700; returns the directories it made,
/// outermost first.
fn create_out_dir(out: &Path) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::DirBuilderExt;
    let mut missing = Vec::new();
    let mut p = Some(out);
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d.to_path_buf());
        p = d.parent();
    }
    missing.reverse();
    for (i, d) in missing.iter().enumerate() {
        if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(d) {
            for made in missing[..i].iter().rev() {
                let _ = std::fs::remove_dir(made);
            }
            return Err(e).with_context(|| format!("--out: creating {}", d.display()));
        }
    }
    Ok(missing)
}
