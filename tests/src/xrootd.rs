//! A real XRootD server in a lab namespace: Debian's `xrootd` (xrootd-server) serving
//! `root://`, and with `https` the XrdHttp plugin (xrootd-server-plugins) serving HTTPS and
//! WebDAV from the same process, as WLCG storage runs it.
//!
//! Debian's xrootd refuses to run as root, so it runs as `nobody` (`-R nobody`); its data,
//! log and admin directories belong to nobody, or it exits without a word. It is killed by
//! PID when its namespace drops.

use crate::netns::Netns;
use crate::wait_for;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Xrootd {
    pub pid: u32,
    /// The exported directory (paths on the wire are this directory's absolute paths).
    pub data: PathBuf,
    pub log: PathBuf,
}

pub struct Opts<'a> {
    /// `xrd.port` of the root:// protocol.
    pub port: u16,
    /// (port, certificate, key, CA certificate): XrdHttp with TLS on that port (`xrd.tls`,
    /// `xrd.tlsca`).
    pub https: Option<(u16, &'a Path, &'a Path, &'a Path)>,
    /// Extra configuration lines (e.g. a security protocol).
    pub extra: &'a str,
}

/// Starts xrootd in `ns` with its files under `dir`, and waits until it says it serves and
/// its port accepts (and, with `https`, until XrdHttp answers).
pub fn start(ns: &Netns, dir: &Path, o: &Opts) -> Xrootd {
    let data = dir.join("data");
    let logs = dir.join("log");
    let admin = dir.join("admin");
    for d in [&data, &logs, &admin] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut conf = format!(
        "all.export {data}\nxrd.port {port}\nall.adminpath {admin}\nall.pidpath {admin}\n",
        data = data.display(),
        port = o.port,
        admin = admin.display(),
    );
    if let Some((port, cert, key, ca)) = o.https {
        // The key must be readable by nobody: a copy under `dir`, 0600, owned by nobody.
        let k = dir.join("xrd-key.pem");
        std::fs::copy(key, &k).unwrap();
        conf.push_str(&format!(
            "xrd.protocol XrdHttp:{port} libXrdHttp.so\nxrd.tls {} {}\nxrd.tlsca certfile {}\n",
            cert.display(),
            k.display(),
            ca.display(),
        ));
        ns.ok(&format!(
            "chown nobody {} && chmod 600 {}",
            k.display(),
            k.display()
        ));
    }
    conf.push_str(o.extra);
    let cfg = dir.join("xrootd.cfg");
    std::fs::write(&cfg, conf).unwrap();
    ns.ok(&format!(
        "chown -R nobody {} {} {}",
        data.display(),
        logs.display(),
        admin.display()
    ));
    // With `-n lab` xrootd writes its log under a directory of that name.
    let log = logs.join("lab").join("xrootd.log");
    let pid = ns.spawn_logged(
        &format!(
            "xrootd -R nobody -c {} -l {} -n lab",
            cfg.display(),
            logs.join("xrootd.log").display()
        ),
        &dir.join("xrootd.out"),
    );
    let x = Xrootd { pid, data, log };
    let up = wait_for(Duration::from_secs(15), || {
        // A server that demands authentication refuses xrdfs: its own log says when it
        // serves.
        let root = x.log_text().lines().any(|l| {
            l.starts_with("------ xrootd lab@") && l.ends_with("initialization completed.")
        }) && ns
            .run(&format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{}'", o.port))
            .status
            .success();
        let http = o.https.is_none_or(|(port, _, _, _)| {
            ns.run(&format!(
                "curl -sk -o /dev/null -m 1 https://127.0.0.1:{port}/"
            ))
            .status
            .success()
        });
        (root && http).then_some(())
    });
    assert!(
        up.is_some(),
        "xrootd did not come up on 127.0.0.1:{}: {}\n{}",
        o.port,
        std::fs::read_to_string(dir.join("xrootd.out")).unwrap_or_default(),
        x.log_text()
    );
    x
}

impl Xrootd {
    /// The server's own log (why it refused a request).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Writes `name` into the exported directory, owned by nobody; returns its wire path.
    pub fn put(&self, ns: &Netns, name: &str, body: &[u8]) -> String {
        let p = self.data.join(name);
        std::fs::write(&p, body).unwrap();
        ns.ok(&format!("chown nobody {}", p.display()));
        p.display().to_string()
    }
}
