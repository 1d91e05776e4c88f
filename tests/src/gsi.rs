//! Grid Security Infrastructure pieces for lab tests: a throwaway IGTF-style CA with a
//! Globus trust directory (`<hash>.0` + `<hash>.signing_policy`), host certificates signed
//! from the CSRs that `lvs-cert request` writes, a user proxy from `grid-proxy-init`, a
//! gridmap, and a real globus-gridftp-server with GSI (no anonymous access).

use crate::netns::{wait_for, Netns};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const USER_DN: &str = "/DC=test/CN=Test User";

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Globus trust directory (X509_CERT_DIR).
pub struct TrustDir(pub PathBuf);

impl TrustDir {
    pub fn new(dir: &Path) -> TrustDir {
        std::fs::create_dir_all(dir).unwrap();
        TrustDir(dir.to_path_buf())
    }

    /// Trusts the CA certificate in `pem` (one certificate) for any subject.
    pub fn add(&self, pem: &Path) {
        let hash = sh(&format!("openssl x509 -in {} -noout -hash", pem.display()));
        let subject = sh(&format!(
            "openssl x509 -in {} -noout -subject -nameopt compat",
            pem.display()
        ));
        let hash = hash.trim();
        let subject = subject.trim().trim_start_matches("subject=");
        std::fs::copy(pem, self.0.join(format!("{hash}.0"))).unwrap();
        std::fs::write(
            self.0.join(format!("{hash}.signing_policy")),
            format!(
                "access_id_CA X509 '{subject}'\npos_rights globus CA:sign\ncond_subjects globus '\"/*\"'\n"
            ),
        )
        .unwrap();
    }
}

/// A throwaway CA standing for an IGTF CA (InCommon, GEANT TCS).
pub struct TestCa {
    pub dir: PathBuf,
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout {} -out {} -subj '/DC=test/CN=Test CA' -days 2 \
             -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign 2>&1",
            key.display(),
            cert.display()
        ));
        TestCa {
            dir: dir.to_path_buf(),
            cert,
            key,
        }
    }

    /// Signs `csr`, keeping its subject and its SANs, into `out`.
    pub fn sign(&self, csr: &Path, out: &Path) {
        sh(&format!(
            "openssl x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -days 1 -copy_extensions copy -out {} 2>&1",
            csr.display(),
            self.cert.display(),
            self.key.display(),
            out.display()
        ));
    }

    /// A user certificate (USER_DN) and an RFC proxy made from it with grid-proxy-init;
    /// returns the proxy path (0600, as Globus requires).
    pub fn user_proxy(&self, trust: &TrustDir) -> PathBuf {
        let (k, c, csr) = (
            self.dir.join("user.key"),
            self.dir.join("user.pem"),
            self.dir.join("user.csr"),
        );
        sh(&format!(
            "openssl req -new -newkey rsa:2048 -nodes -keyout {} -out {} -subj '{USER_DN}' 2>&1 && \
             openssl x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -days 1 -out {} 2>&1 && chmod 600 {}",
            k.display(),
            csr.display(),
            csr.display(),
            self.cert.display(),
            self.key.display(),
            c.display(),
            k.display()
        ));
        let proxy = self.dir.join("proxy.pem");
        sh(&format!(
            "X509_CERT_DIR={} grid-proxy-init -cert {} -key {} -out {} -rfc -q",
            trust.0.display(),
            c.display(),
            k.display(),
            proxy.display()
        ));
        std::fs::set_permissions(&proxy, std::fs::Permissions::from_mode(0o600)).unwrap();
        proxy
    }
}

/// Starts a GSI globus-gridftp-server on 2811 in `ns` with the host credential
/// `cert`/`key`, under its own hostname (`unshare -u`), mapping USER_DN to nobody.
/// `hosts` is the namespace's hosts file (it must name `hostname`).
#[allow(clippy::too_many_arguments)]
pub fn start_gridftp(
    ns: &Netns,
    ip: Ipv4Addr,
    hostname: &str,
    hosts: &str,
    cert: &Path,
    key: &Path,
    trust: &TrustDir,
    work: &Path,
) -> u32 {
    std::fs::create_dir_all(work).unwrap();
    ns.write_etc("hosts", hosts);
    let gridmap = work.join("grid-mapfile");
    std::fs::write(&gridmap, format!("\"{USER_DN}\" nobody\n")).unwrap();
    let log = work.join("gridftp.log");
    let pid = ns.spawn_logged(
        &format!(
            "env X509_USER_CERT={c} X509_USER_KEY={k} X509_CERT_DIR={t} GRIDMAP={g} \
             unshare -u sh -c 'hostname {hostname} && exec globus-gridftp-server -p 2811 -d error \
             -l {l}.server -Z {l}.transfers -data-interface {ip} -port-range 50000,50100'",
            c = cert.display(),
            k = key.display(),
            t = trust.0.display(),
            g = gridmap.display(),
            l = log.display(),
        ),
        &log,
    );
    let up = wait_for(Duration::from_secs(10), || {
        ns.run("ss -Hltn 'sport = :2811' | grep -q LISTEN")
            .status
            .success()
            .then_some(())
    });
    assert!(
        up.is_some(),
        "GSI globus-gridftp-server did not listen in {}: {}",
        ns.name,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    pid
}
