//! A real WebDAV server on a lab host: Debian's apache2 with mod_dav and mod_dav_fs,
//! listening on the host's real IP, storing uploads in a directory of the test's own.
//! It stands for the site's HTTP storage (StoRM WebDAV, XRootD's HTTP plugin): any server
//! that accepts `PUT` behaves the same towards a redirect.

use crate::dr::Host;
use crate::wait_for;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Dav {
    pub pid: u32,
    /// Where PUT requests land.
    pub data: PathBuf,
    pub port: u16,
}

/// Starts apache2 in `h`'s namespace on `h.ip:port`, with its files under `dir`.
/// `tls`: (certificate, key) PEM files for HTTPS on that port.
pub fn start(h: &Host, dir: &Path, port: u16, tls: Option<(&Path, &Path)>) -> Dav {
    let data = dir.join("data");
    let run = dir.join("run");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    h.ok(&format!(
        "chown www-data:www-data {} {}",
        data.display(),
        run.display()
    ));
    let ssl = match tls {
        None => String::new(),
        Some((c, k)) => format!(
            "LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n\
             LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so\n\
             SSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\n",
            c.display(),
            k.display()
        ),
    };
    let conf = format!(
        "ServerRoot {dir}\nServerName {ip}\n\
         LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
         LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
         LoadModule dav_module /usr/lib/apache2/modules/mod_dav.so\n\
         LoadModule dav_fs_module /usr/lib/apache2/modules/mod_dav_fs.so\n\
         {ssl}User www-data\nGroup www-data\nListen {ip}:{port}\n\
         PidFile {run}/httpd.pid\nErrorLog {dir}/error.log\nDAVLockDB {run}/davlock\n\
         LimitRequestBody 0\nDocumentRoot {data}\n\
         <Directory {data}>\n  DAV On\n  Require all granted\n</Directory>\n",
        dir = dir.display(),
        ip = h.ip,
        run = run.display(),
        data = data.display(),
    );
    let cfg = dir.join("httpd.conf");
    std::fs::write(&cfg, conf).unwrap();
    let pid = h.ns.spawn_logged(
        &format!("apache2 -f {} -DFOREGROUND", cfg.display()),
        &dir.join("stdout.log"),
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    let up = wait_for(Duration::from_secs(10), || {
        h.ns.run(&format!(
            "curl -sk -o /dev/null -m 1 {scheme}://{}:{port}/",
            h.ip
        ))
        .status
        .success()
        .then_some(())
    });
    assert!(
        up.is_some(),
        "apache2 (WebDAV) did not start on {}:{port}: {}",
        h.ip,
        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
    Dav { pid, data, port }
}
