//! Installing a certificate and key where GridFTP or XRootD reads them. The new pair is
//! verified first, so a live certificate is never replaced by a broken one; each file is
//! replaced atomically (temp, fsync, rename), cert 0644, key 0400.

use crate::verify;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub const GRIDFTP_CERT: &str = "/etc/grid-security/gridftp/gridftp-hostcert.pem";
pub const GRIDFTP_KEY: &str = "/etc/grid-security/gridftp/gridftp-hostkey.pem";
pub const XROOTD_CERT: &str = "/etc/grid-security/hostcert.pem";
pub const XROOTD_KEY: &str = "/etc/grid-security/hostkey.pem";

#[derive(Debug, Clone)]
pub struct Target {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub xrootd: bool,
}

impl Target {
    pub fn new(cert: Option<PathBuf>, key: Option<PathBuf>, xrootd: bool) -> Target {
        let (c, k) = if xrootd {
            (XROOTD_CERT, XROOTD_KEY)
        } else {
            (GRIDFTP_CERT, GRIDFTP_KEY)
        };
        Target {
            cert: cert.unwrap_or_else(|| c.into()),
            key: key.unwrap_or_else(|| k.into()),
            xrootd,
        }
    }

    /// The installed certificate if it verifies against its key and covers `names`.
    pub fn current(&self, names: &[String]) -> Option<verify::CertInfo> {
        let chain = std::fs::read(&self.cert).ok()?;
        let key = std::fs::read_to_string(&self.key).ok()?;
        verify::check_pair(&chain, &key, names).ok()
    }
}

pub enum Outcome {
    Installed,
    Unchanged,
}

/// Verifies and installs; runs the deploy hook only when something changed.
pub fn install(
    t: &Target,
    chain: &str,
    key: &str,
    names: &[String],
    hook: Option<&str>,
) -> Result<Outcome> {
    let leaf = verify::check_pair(chain.as_bytes(), key, names).context(
        "refusing to install: the new certificate fails verification (the live one is untouched)",
    )?;
    if std::fs::read_to_string(&t.cert).ok().as_deref() == Some(chain)
        && std::fs::read_to_string(&t.key).ok().as_deref() == Some(key)
    {
        return Ok(Outcome::Unchanged);
    }
    for p in [&t.cert, &t.key] {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
    }
    // Key first: a reader between the two renames sees the old cert with the new key for
    // an instant at worst; the hook (reload) runs only after both are in place. If the
    // certificate cannot be written, the old key goes back so the live pair still matches.
    let old_key = std::fs::read(&t.key).ok();
    lvs_shared::atomic::write(&t.key, key.as_bytes(), 0o400)
        .with_context(|| format!("writing {}", t.key.display()))?;
    if let Err(e) = lvs_shared::atomic::write(&t.cert, chain.as_bytes(), 0o644) {
        match old_key {
            Some(k) => {
                let _ = lvs_shared::atomic::write(&t.key, &k, 0o400);
            }
            None => {
                let _ = std::fs::remove_file(&t.key);
            }
        }
        return Err(e).with_context(|| {
            format!(
                "writing {} (the previous key was put back)",
                t.cert.display()
            )
        });
    }
    println!(
        "installed {} and {} (expires {})",
        t.cert.display(),
        t.key.display(),
        verify::fmt_time(leaf.not_after)
    );
    if let Some(h) = hook {
        run_hook(h, t)?;
    }
    Ok(Outcome::Installed)
}

/// Runs `sh -c CMD` with the installed paths in the environment.
pub fn run_hook(cmd: &str, t: &Target) -> Result<()> {
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("LVS_CERT_CERT", &t.cert)
        .env("LVS_CERT_KEY", &t.key)
        .status()
        .with_context(|| format!("--deploy-hook `{cmd}`: cannot start sh"))?;
    if !st.success() {
        bail!("--deploy-hook `{cmd}` failed ({st}); the certificate is installed");
    }
    Ok(())
}

/// What to put in /etc/sysconfig/globus-gridftp-server (GridFTP mode only).
pub fn print_sysconfig(t: &Target) {
    if t.xrootd {
        println!(
            "XRootD reads {} and {} by default; GridFTP too when X509_USER_CERT/KEY are unset.",
            t.cert.display(),
            t.key.display()
        );
        return;
    }
    println!("Set in /etc/sysconfig/globus-gridftp-server:");
    println!("export X509_USER_CERT={}", t.cert.display());
    println!("export X509_USER_KEY={}", t.key.display());
}

pub fn from_dir(dir: &Path, names: &[String]) -> Option<crate::store::Found> {
    crate::store::newest_valid(dir, names)
}
