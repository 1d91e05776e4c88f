//! Installing a certificate and key where GridFTP or XRootD reads them. The new pair is
//! verified first (pair, names, dates, chain to a trusted root), so a live certificate is
//! never replaced by a broken or planted one. The two paths are symlinks into one
//! generation directory that a single rename switches (see [`install_steps`]), so readers
//! never see one pair's certificate with the other's key; cert 0644, key 0400, and the
//! owner and group of the files they replace are kept (xrootd reads its key as xrootd).
//!
//! The shipped `lvs-cert-renew.service` runs as root with CAP_CHOWN only, so a key that
//! belongs to another user with mode 0400 (XRootD's `xrootd:xrootd`) cannot be read back.
//! It need not be: when both paths are our links into the same generation, that
//! generation was written by this code in one step after the pair was verified, in a
//! directory only root writes, so the certificate there stands for the pair (see
//! [`Target::current`] and [`pair_is_installed`]). The unit gets no CAP_DAC_READ_SEARCH,
//! which would let it read every file on the host.

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

    /// The installed certificate if it verifies against its key and covers `names`. A key
    /// this process may not read (another user's 0400 key, under the unit without
    /// CAP_DAC_READ_SEARCH) counts as matching when both paths are our links into one
    /// generation (written together, after the pair was verified).
    pub fn current(&self, names: &[String]) -> Option<verify::CertInfo> {
        let chain = std::fs::read(&self.cert).ok()?;
        match std::fs::read_to_string(&self.key) {
            Ok(key) => verify::check_pair(&chain, &key, names).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && self.linked() => {
                verify::check_cert(&chain, names).ok()
            }
            Err(_) => None,
        }
    }

    /// Both paths are our links into the current generation.
    fn linked(&self) -> bool {
        is_our_link(self, &self.cert, GEN_CERT) && is_our_link(self, &self.key, GEN_KEY)
    }
}

/// Whether `chain` and `key` are what the two paths hold now. The key is compared when it
/// can be read; when it may not be (PermissionDenied) and both paths are our links into
/// one generation, the certificate decides: that generation holds the pair it was written
/// with (see the module comment).
fn pair_is_installed(t: &Target, chain: &str, key: &str) -> bool {
    if std::fs::read_to_string(&t.cert).ok().as_deref() != Some(chain) {
        return false;
    }
    match std::fs::read_to_string(&t.key) {
        Ok(k) => k == key,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied && t.linked(),
    }
}

pub enum Outcome {
    Installed,
    Unchanged,
}

/// The deploy hook and how long it may run.
#[derive(Debug, Clone)]
pub struct Hook {
    pub cmd: String,
    pub timeout: std::time::Duration,
}

/// Verifies (pair, names, dates, and the chain up to `trust`) and installs; runs the
/// deploy hook only when something changed.
pub fn install(
    t: &Target,
    chain: &str,
    key: &str,
    names: &[String],
    trust: &verify::Trust,
    hook: Option<&Hook>,
) -> Result<Outcome> {
    install_steps(t, chain, key, names, trust, hook, &mut |_| {})
}

/// Where the generations live: beside the certificate, `.lvs-cert-<cert file name>/`.
fn store_dir(t: &Target) -> PathBuf {
    let name = t
        .cert
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cert".into());
    t.cert
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!(".lvs-cert-{name}"))
}

/// The symlink text for `path` pointing at `file` in the current generation: relative when
/// the store is in the same directory, so the tree can be moved or bind-mounted.
fn link_text(t: &Target, path: &Path, file: &str) -> PathBuf {
    let store = store_dir(t);
    let rel = Path::new(store.file_name().unwrap_or_default())
        .join(CURRENT)
        .join(file);
    if path.parent() == store.parent() {
        rel
    } else {
        store.join(CURRENT).join(file)
    }
}

const CURRENT: &str = "current";
const GEN_CERT: &str = "cert.pem";
const GEN_KEY: &str = "key.pem";

/// Owner and group a file at `p` has now (through symlinks), to keep them.
fn owner(p: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.uid(), m.gid()))
}

fn chown(p: &Path, o: Option<(u32, u32)>) -> Result<()> {
    if let Some((uid, gid)) = o {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))
            .with_context(|| format!("keeping owner {uid}:{gid} on {}", p.display()))?;
    }
    Ok(())
}

/// Makes (or replaces, in one rename) the symlink `at` -> `to`.
fn swap_link(to: &Path, at: &Path) -> Result<()> {
    let dir = at.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".lvs-link-{}-{}",
        std::process::id(),
        at.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(to, &tmp)
        .with_context(|| format!("creating a symlink in {}", dir.display()))?;
    if let Err(e) = std::fs::rename(&tmp, at) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("replacing {}", at.display()));
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn is_our_link(t: &Target, at: &Path, file: &str) -> bool {
    std::fs::read_link(at).ok().as_deref() == Some(link_text(t, at, file).as_path())
}

/// Fills a new generation directory: key 0400, cert 0644, both with the given owners.
fn write_generation(
    dir: &Path,
    chain: &[u8],
    key: &[u8],
    cert_owner: Option<(u32, u32)>,
    key_owner: Option<(u32, u32)>,
) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let k = dir.join(GEN_KEY);
    let c = dir.join(GEN_CERT);
    lvs_shared::atomic::write(&k, key, 0o400)
        .with_context(|| format!("writing {}", k.display()))?;
    chown(&k, key_owner)?;
    lvs_shared::atomic::write(&c, chain, 0o644)
        .with_context(|| format!("writing {}", c.display()))?;
    chown(&c, cert_owner)?;
    Ok(())
}

/// The generations `g-<n>` in the store, oldest first.
fn generations(store: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(store)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_string_lossy()
                .strip_prefix("g-")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// The install, with `step` called after every change on disk (tests check that the two
/// paths show a matching pair at each of those moments).
///
/// The live paths are symlinks into `.lvs-cert-<cert name>/current/`, and `current` is a
/// symlink to a generation directory holding both files. A new pair goes into a new
/// generation, then one rename of `current` switches both paths at once: no instant shows
/// a certificate with the other pair's key. The first install turns existing regular
/// files into such links, after copying them into generation 0, so the pair stays matched
/// during that too. The previous generation is kept (a reader that resolved it a moment
/// ago still reads a whole file), older ones are removed.
fn install_steps(
    t: &Target,
    chain: &str,
    key: &str,
    names: &[String],
    trust: &verify::Trust,
    hook: Option<&Hook>,
    step: &mut dyn FnMut(&str),
) -> Result<Outcome> {
    let leaf = verify::check_pair(chain.as_bytes(), key, names)
        .and_then(|l| verify::check_trust(chain.as_bytes(), names, trust).map(|_| l))
        .context(
            "refusing to install: the new certificate fails verification (the live one is untouched)",
        )?;
    if pair_is_installed(t, chain, key) {
        return Ok(Outcome::Unchanged);
    }
    for p in [&t.cert, &t.key] {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
    }
    let key_owner = owner(&t.key);
    let cert_owner = owner(&t.cert);
    let store = store_dir(t);
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let gens = generations(&store);
    let mut next = gens.last().map(|(n, _)| n + 1).unwrap_or(0);

    // First install over plain files: generation 0 holds the live pair, then the paths
    // become links to it (same content, so each of the two renames keeps them matched).
    let linked = is_our_link(t, &t.cert, GEN_CERT) && is_our_link(t, &t.key, GEN_KEY);
    if !linked {
        if let (Ok(old_c), Ok(old_k)) = (std::fs::read(&t.cert), std::fs::read(&t.key)) {
            let g = store.join(format!("g-{next}"));
            write_generation(&g, &old_c, &old_k, cert_owner, key_owner)?;
            swap_link(Path::new(g.file_name().unwrap()), &store.join(CURRENT))?;
            step("old pair copied to a generation");
            swap_link(&link_text(t, &t.cert, GEN_CERT), &t.cert)?;
            step("cert path linked");
            swap_link(&link_text(t, &t.key, GEN_KEY), &t.key)?;
            step("key path linked");
            next += 1;
        }
    }
    let g = store.join(format!("g-{next}"));
    if let Err(e) = write_generation(&g, chain.as_bytes(), key.as_bytes(), cert_owner, key_owner) {
        let _ = std::fs::remove_dir_all(&g);
        return Err(e);
    }
    step("new generation written");
    if let Err(e) = swap_link(Path::new(g.file_name().unwrap()), &store.join(CURRENT)) {
        let _ = std::fs::remove_dir_all(&g);
        return Err(e);
    }
    step("current switched");
    // A fresh install (no files before): the paths are created now.
    for (path, file) in [(&t.cert, GEN_CERT), (&t.key, GEN_KEY)] {
        if !is_our_link(t, path, file) {
            swap_link(&link_text(t, path, file), path)?;
            step("path linked");
        }
    }
    // Keep the current and the previous generation.
    let gens = generations(&store);
    if gens.len() > 2 {
        for (_, old) in &gens[..gens.len() - 2] {
            let _ = std::fs::remove_dir_all(old);
        }
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

/// Runs `sh -c CMD` with the installed paths in the environment, in its own process
/// group; after `timeout` the whole group is killed (a hung `systemctl reload` must not
/// hang the renewal forever).
pub fn run_hook(h: &Hook, t: &Target) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let cmd = &h.cmd;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("LVS_CERT_CERT", &t.cert)
        .env("LVS_CERT_KEY", &t.key)
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("--deploy-hook `{cmd}`: cannot start sh"))?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let deadline = std::time::Instant::now() + h.timeout;
    loop {
        if let Some(st) = child.try_wait()? {
            if !st.success() {
                bail!("--deploy-hook `{cmd}` failed ({st}); the certificate is installed");
            }
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            bail!(
                "--deploy-hook `{cmd}` did not finish within {}s (--deploy-hook-timeout); its process group was killed; the certificate is installed",
                h.timeout.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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

pub fn from_dir(
    dir: &Path,
    names: &[String],
    trust: &verify::Trust,
) -> Option<crate::store::Found> {
    crate::store::newest_valid(dir, crate::store::Links::WithinRoot, names, trust)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::ca_signed;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    fn pair_matches(t: &Target) -> bool {
        match (std::fs::read(&t.cert), std::fs::read_to_string(&t.key)) {
            (Ok(c), Ok(k)) => verify::check_pair(&c, &k, &[]).is_ok(),
            _ => false,
        }
    }

    fn trust(ca: &str) -> verify::Trust {
        verify::Trust::Roots {
            file: "ca.pem".into(),
            certs: verify::pem_certs(ca.as_bytes()),
        }
    }

    /// At every change on disk, the two live paths show a matching pair: from plain files
    /// (an older install) to links, and from one generation to the next.
    #[test]
    fn the_paths_never_show_a_mismatched_pair() {
        let d = tempfile::tempdir().unwrap();
        let t = Target::new(
            Some(d.path().join("hostcert.pem")),
            Some(d.path().join("hostkey.pem")),
            false,
        );
        let names = vec!["ftp.example".to_string()];
        let (_, c0, k0) = ca_signed(&["ftp.example"], verify::now() - 60);
        // An install as older versions left it: two plain files.
        std::fs::write(&t.cert, &c0).unwrap();
        std::fs::write(&t.key, &k0).unwrap();
        let mut steps = 0;
        for _ in 0..3 {
            let (ca2, c, k) = ca_signed(&["ftp.example"], verify::now() - 60);
            let mut check = |what: &str| {
                steps += 1;
                assert!(pair_matches(&t), "mismatched pair after: {what}");
            };
            install_steps(&t, &c, &k, &names, &trust(&ca2), None, &mut check).unwrap();
            assert_eq!(std::fs::read_to_string(&t.cert).unwrap(), c);
        }
        assert!(steps >= 6, "{steps}");
        assert!(std::fs::symlink_metadata(&t.cert)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(generations(&store_dir(&t)).len(), 2, "old generations kept");
        let m = std::fs::metadata(&t.key).unwrap();
        assert_eq!(m.mode() & 0o777, 0o400);
    }

    #[test]
    fn owner_and_group_of_the_existing_key_are_kept() {
        if !nix::unistd::Uid::effective().is_root() {
            panic!("this test needs root (chown)");
        }
        let d = tempfile::tempdir().unwrap();
        let t = Target::new(
            Some(d.path().join("hostcert.pem")),
            Some(d.path().join("hostkey.pem")),
            true,
        );
        let (ca, c0, k0) = ca_signed(&["n1.example"], verify::now() - 60);
        std::fs::write(&t.cert, &c0).unwrap();
        std::fs::write(&t.key, &k0).unwrap();
        std::os::unix::fs::chown(&t.key, Some(4321), Some(4322)).unwrap();
        let _ = ca;
        let (ca2, c2, k2) = ca_signed(&["n1.example"], verify::now() - 30);
        install(
            &t,
            &c2,
            &k2,
            &["n1.example".to_string()],
            &trust(&ca2),
            None,
        )
        .unwrap();
        let m = std::fs::metadata(&t.key).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4322), "key owner not kept");
        assert_eq!(std::fs::read_to_string(&t.key).unwrap(), k2);
    }

    #[test]
    fn a_hung_deploy_hook_is_killed_with_its_children() {
        let d = tempfile::tempdir().unwrap();
        let t = Target::new(Some(d.path().join("c")), Some(d.path().join("k")), false);
        let pidfile = d.path().join("child.pid");
        let h = Hook {
            cmd: format!("sleep 600 & echo $! > {}; wait", pidfile.display()),
            timeout: Duration::from_millis(800),
        };
        let start = std::time::Instant::now();
        let e = run_hook(&h, &t).unwrap_err().to_string();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert!(e.contains("did not finish within"), "{e}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "the hook's child {pid} survived");
    }
}
