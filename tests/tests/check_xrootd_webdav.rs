//! The `xrootd` and `webdav` checks against Debian's real XRootD server (xrootd-server, and
//! its XrdHttp plugin from xrootd-server-plugins for HTTPS/WebDAV), the way a director
//! sees the node: through `/health`, with `/status` showing what each check proved.
//!
//! Each test breaks the real server in the ways a site sees it break (the probe file gone,
//! the process stopped but its socket still accepting, the process gone, another web server
//! on the port, a server that demands authentication) and asserts the reason names the
//! step that failed.
//!
//! The lab is `DrLab::one_real`: its director namespace is the nftables MAC-rewrite emulation
//! of LVS-DR, not IPVS; only its address is used here, to read `/health` and `/status` as a
//! director does.

mod daemon_util;

use daemon_util::*;
use lab::dr::DIRECTOR_IP;
use lab::gsi::TestCa;
use lab::{wait_for, xrootd, DrLab};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const XRD_PORT: u16 = 1094;
const DAV_PORT: u16 = 8443;
/// The name the lab XRootD's certificate carries (the check connects by address and sends
/// this name as SNI).
const XRD_HOST: &str = "xrd.lab";

/// One real server with the data plane set up by hand and the checks in `checks` only (no
/// GridFTP); `/status` is open to the director.
fn agent(lab: &DrLab, dir: &TestDir, checks: &str) -> (u32, PathBuf) {
    let rs = &lab.reals[0];
    // The node itself is in `allow`: start_agent asks it from its own address.
    let report_extra = format!("allow = [\"{DIRECTOR_IP}\", \"{}\"]", rs.ip);
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            extra: checks,
            report_extra: &report_extra,
            ..NodeOpts::default()
        },
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 1\n",
        "",
    );
    std::fs::write(&cfg, text).unwrap();
    let log = dir.join("agent.log");
    let pid = start_agent(rs, &cfg, &log, HTTP_PORT);
    (pid, log)
}

/// `/status` from the director: (debounced up, detail) of check `name`.
fn check(lab: &DrLab, name: &str) -> (Option<bool>, String) {
    let out = lab.director.ns.run(&format!(
        "curl -s -m 2 http://{}:{HTTP_PORT}/status",
        lab.reals[0].ip
    ));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .map(|c| {
            (
                c["up"].as_bool(),
                c["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or((None, format!("no check {name} in /status: {v}")))
}

/// Waits until check `name` is up with a detail containing every one of `want`.
fn up_with(lab: &DrLab, what: &str, name: &str, want: &[&str], log: &Path) -> String {
    wait_for(Duration::from_secs(10), || {
        let (up, detail) = check(lab, name);
        (up == Some(true) && want.iter().all(|w| detail.contains(w))).then_some(detail)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: {name} not up with {want:?}: {:?}\n{}",
            check(lab, name),
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })
}

/// Waits until check `name` is down with a detail starting with `want`, and `/health`
/// answers 503. Returns the detail.
fn down_with(lab: &DrLab, what: &str, name: &str, want: &str) -> String {
    let detail = wait_for(Duration::from_secs(10), || {
        let (up, detail) = check(lab, name);
        (up == Some(false) && detail.starts_with(want)).then_some(detail)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: {name} not down with {want:?}: {:?}",
            check(lab, name)
        )
    });
    let (code, body) = health(&lab.director.ns, lab.reals[0].ip, HTTP_PORT);
    assert_eq!(code, 503, "{what}: /health {body}");
    detail
}

/// A lab CA and a certificate for XRD_HOST signed by it (serverAuth and clientAuth, as an
/// IGTF host certificate has them): (CA, cert, key).
fn xrd_cert(dir: &TestDir) -> (PathBuf, PathBuf, PathBuf) {
    let ca = TestCa::new(&dir.join("ca"));
    let (key, csr, cert) = (
        dir.join("xrd.key"),
        dir.join("xrd.csr"),
        dir.join("xrd.pem"),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-subj", &format!("/CN={XRD_HOST}")])
        .args(["-addext", &format!("subjectAltName=DNS:{XRD_HOST}")])
        .args(["-addext", "extendedKeyUsage=serverAuth,clientAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ca.sign(&csr, &cert);
    (ca.cert.clone(), cert, key)
}

/// login, ping and stat against a real xrootd; each way of breaking it names its step.
#[test]
fn xrootd_check_logs_in_pings_and_stats_a_real_xrootd() {
    let lab = DrLab::one_real("cxps");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let xrd = xrootd::start(
        &rs.ns,
        &dir.join("xrd"),
        &xrootd::Opts {
            port: XRD_PORT,
            https: None,
            extra: "",
        },
    );
    let probe = xrd.put(&rs.ns, "lvs-node-probe", b"hello\n");
    // `xrootd` logs in, pings and stats the probe; `xrootd-ping` pings without a login.
    let checks = format!(
        "[[check]]\nname = \"xrootd\"\nkind = \"xrootd\"\ntarget = \"127.0.0.1:{XRD_PORT}\"\nstat = \"{probe}\"\n\
         interval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n\
         [[check]]\nname = \"xrootd-ping\"\nkind = \"xrootd\"\ntarget = \"127.0.0.1:{XRD_PORT}\"\nlogin = false\n\
         interval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n"
    );
    let (agent, log) = agent(&lab, &dir, &checks);
    up_with(
        &lab,
        "xrootd serving",
        "xrootd",
        &[
            "data server",
            "login ok",
            "ping ok",
            &format!("stat {probe} ok (6 bytes)"),
        ],
        &log,
    );
    up_with(
        &lab,
        "xrootd serving",
        "xrootd-ping",
        &["data server", "ping answered (not logged in)"],
        &log,
    );
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(5),
    )
    .expect("both checks up: /health 200");

    // The probe file gone: the server answers, the stat names the file.
    std::fs::remove_file(&probe).unwrap();
    let d = down_with(
        &lab,
        "probe removed",
        "xrootd",
        &format!("kXR_stat {probe}: kXR_NotFound (3011)"),
    );
    assert!(d.contains(&probe), "{d}");
    assert_eq!(
        check(&lab, "xrootd-ping").0,
        Some(true),
        "ping needs no file"
    );
    xrd.put(&rs.ns, "lvs-node-probe", b"hello\n");
    up_with(&lab, "probe back", "xrootd", &["stat"], &log);

    // Stopped: the kernel still accepts the connection, nothing answers the handshake.
    rs.ns.signal(xrd.pid, Signal::SIGSTOP);
    down_with(
        &lab,
        "xrootd stopped",
        "xrootd",
        "handshake: no answer within 900ms",
    );
    down_with(
        &lab,
        "xrootd stopped",
        "xrootd-ping",
        "handshake: no answer within 900ms",
    );
    rs.ns.signal(xrd.pid, Signal::SIGCONT);
    up_with(&lab, "xrootd continued", "xrootd", &["ping ok"], &log);
    up_with(
        &lab,
        "xrootd continued",
        "xrootd-ping",
        &["ping answered"],
        &log,
    );

    // Gone.
    rs.ns.kill(xrd.pid);
    down_with(&lab, "xrootd killed", "xrootd", "connection refused");
    sigterm_ok(&rs.ns, agent);
}

/// A server that demands authentication (sss only) answers the login with the protocols
/// it wants; the check names them, and a stat (which needs the authentication) fails with
/// the fix in its reason.
#[test]
fn xrootd_check_names_the_authentication_a_server_demands() {
    let lab = DrLab::one_real("cxau");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let keytab = dir.join("sss.keytab");
    rs.ns.ok(&format!(
        "xrdsssadmin -k lab -u nobody -g nobody add {} && chown nobody {} && chmod 400 {}",
        keytab.display(),
        keytab.display(),
        keytab.display()
    ));
    let extra = format!(
        "xrootd.seclib libXrdSec.so\nsec.protocol sss -s {}\nsec.protbind * only sss\n",
        keytab.display()
    );
    let xrd = xrootd::start(
        &rs.ns,
        &dir.join("xrd"),
        &xrootd::Opts {
            port: XRD_PORT,
            https: None,
            extra: &extra,
        },
    );
    let probe = xrd.put(&rs.ns, "lvs-node-probe", b"hello\n");
    let checks = format!(
        "[[check]]\nname = \"xrootd\"\nkind = \"xrootd\"\ntarget = \"127.0.0.1:{XRD_PORT}\"\nstat = \"{probe}\"\n\
         interval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n\
         [[check]]\nname = \"xrootd-ping\"\nkind = \"xrootd\"\ntarget = \"127.0.0.1:{XRD_PORT}\"\nlogin = false\n\
         interval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n"
    );
    let (agent, log) = agent(&lab, &dir, &checks);
    let d = down_with(
        &lab,
        "sss required",
        "xrootd",
        &format!(
            "kXR_stat {probe}: kXR_InvalidRequest (3006): Invalid request; user not authenticated"
        ),
    );
    assert!(
        d.contains("the server asks for sss, which this check does not do"),
        "the reason names the protocol and the way out: {d}"
    );
    up_with(
        &lab,
        "sss required",
        "xrootd-ping",
        &["ping answered (not logged in)"],
        &log,
    );
    let _ = xrd;
    sigterm_ok(&rs.ns, agent);
}

/// OPTIONS and PROPFIND against XRootD's real HTTP plugin over TLS; each way of breaking
/// it names its step.
#[test]
fn webdav_check_against_real_xrootd_http() {
    let lab = DrLab::one_real("cdav");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let (ca, cert, key) = xrd_cert(&dir);
    let xrd = xrootd::start(
        &rs.ns,
        &dir.join("xrd"),
        &xrootd::Opts {
            port: XRD_PORT,
            https: Some((DAV_PORT, &cert, &key, &ca)),
            extra: "",
        },
    );
    let probe = xrd.put(&rs.ns, "lvs-node-probe", b"hello\n");
    let checks = format!(
        "[[check]]\nname = \"webdav\"\nkind = \"webdav\"\ntarget = \"https://127.0.0.1:{DAV_PORT}{probe}\"\n\
         sni = \"{XRD_HOST}\"\nca_file = \"{}\"\ninterval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n",
        ca.display()
    );
    let (agent, log) = agent(&lab, &dir, &checks);
    up_with(
        &lab,
        "XrdHttp serving",
        "webdav",
        &["DAV 1", "PROPFIND 207"],
        &log,
    );

    std::fs::remove_file(&probe).unwrap();
    down_with(
        &lab,
        "probe removed",
        "webdav",
        "PROPFIND: HTTP 404 (expected 207)",
    );
    xrd.put(&rs.ns, "lvs-node-probe", b"hello\n");
    up_with(&lab, "probe back", "webdav", &["PROPFIND 207"], &log);

    rs.ns.signal(xrd.pid, Signal::SIGSTOP);
    down_with(
        &lab,
        "xrootd stopped",
        "webdav",
        "OPTIONS: no answer within 900ms",
    );
    rs.ns.signal(xrd.pid, Signal::SIGCONT);
    up_with(&lab, "xrootd continued", "webdav", &["PROPFIND 207"], &log);

    // A web server that is not WebDAV on the port: apache2 without mod_dav.
    rs.ns.kill(xrd.pid);
    down_with(
        &lab,
        "xrootd killed",
        "webdav",
        "OPTIONS: connection refused",
    );
    let _apache = plain_apache(rs, &dir.join("apache"), &cert, &key);
    down_with(
        &lab,
        "apache without WebDAV",
        "webdav",
        "OPTIONS: no DAV header (the server does not speak WebDAV)",
    );
    sigterm_ok(&rs.ns, agent);
}

/// apache2 serving HTTPS on DAV_PORT with mod_dav not loaded: it answers OPTIONS, without
/// a DAV header.
fn plain_apache(rs: &lab::dr::Host, dir: &Path, cert: &Path, key: &Path) -> u32 {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let conf = format!(
        "ServerRoot {dir}\nServerName {XRD_HOST}\n\
         LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
         LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
         LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n\
         LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so\n\
         SSLEngine on\nSSLCertificateFile {cert}\nSSLCertificateKeyFile {key}\n\
         User www-data\nGroup www-data\nListen 127.0.0.1:{DAV_PORT}\n\
         PidFile {run}/httpd.pid\nErrorLog {dir}/error.log\nDocumentRoot {docs}\n\
         <Directory {docs}>\n  Require all granted\n</Directory>\n",
        dir = dir.display(),
        cert = cert.display(),
        key = key.display(),
        run = run.display(),
        docs = docs.display(),
    );
    let cfg = dir.join("httpd.conf");
    std::fs::write(&cfg, conf).unwrap();
    let pid = rs.ns.spawn_logged(
        &format!("apache2 -f {} -DFOREGROUND", cfg.display()),
        &dir.join("stdout.log"),
    );
    wait_for(Duration::from_secs(10), || {
        rs.ns
            .run(&format!(
                "curl -sk -o /dev/null -m 1 https://127.0.0.1:{DAV_PORT}/"
            ))
            .status
            .success()
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "apache2 did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        )
    });
    pid
}

fn sigterm_ok(ns: &lab::Netns, pid: u32) {
    ns.signal(pid, Signal::SIGTERM);
    assert_eq!(
        ns.wait(pid, Duration::from_secs(5)),
        Some(0),
        "agent did not exit after SIGTERM"
    );
}
