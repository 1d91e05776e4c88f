//! Certificates for third-party copy: XRootD and XrdHttp present the host certificate as
//! the client to the other storage, so it must allow clientAuth. Two real certificates from
//! a lab CA: one serverAuth only (what Let's Encrypt issues since February 2026), one from
//! the CSR `lvs-cert request` writes (serverAuth and clientAuth, what IGTF profiles issue).
//! `lvs-cert inspect`, `lvs-node doctor` (`cert.client_auth`) and the `certificate` check
//! with `tpc_client = true` warn on the first, naming the IGTF route, and not on the second.
//!
//! The lab is `DrLab::one_real`: its director namespace is the nftables MAC-rewrite emulation
//! of LVS-DR, not IPVS; only its address is used here, to read `/health` and `/status` as a
//! director does.

mod daemon_util;

use daemon_util::*;
use lab::dr::DIRECTOR_IP;
use lab::gsi::TestCa;
use lab::{bins, wait_for, DrLab};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const NAME: &str = "xrd.lab";
/// The node's own name: `lvs-cert request --xrootd` writes one CSR per node.
const NODE: &str = "node1.lab";

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    assert!(
        o.status.code().is_some(),
        "{cmd:?} died: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// (serverAuth-only certificate, certificate from `lvs-cert request`'s CSR, its key), both
/// signed by a lab CA that copies the CSR's extensions as a CA following the request does.
fn two_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = TestCa::new(&dir.join("ca"));
    // The serverAuth-only one: a CSR asking for serverAuth alone, as a public TLS profile
    // issues it.
    let (lk, lcsr, le) = (dir.join("le.key"), dir.join("le.csr"), dir.join("le.pem"));
    let o = run(Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", &format!("/CN={NAME}")])
        .args(["-addext", &format!("subjectAltName=DNS:{NAME}")])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&lk)
        .arg("-out")
        .arg(&lcsr));
    assert!(o.status.success(), "{}", text(&o));
    ca.sign(&lcsr, &le);
    // The other from lvs-cert request.
    let out = dir.join("req");
    let o = run(Command::new(bins::lvs_cert())
        .args(["request", "--xrootd", "--vip", NAME, "--alt", NODE, "--out"])
        .arg(&out));
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("Pick a profile that keeps clientAuth: InCommon's IGTF server certificate")
            && stdout.contains("Let's Encrypt"),
        "request names the CA profiles that keep clientAuth:\n{stdout}"
    );
    let csr = out.join(format!("{NODE}.csr"));
    let o = run(Command::new("openssl")
        .args(["req", "-noout", "-text", "-in"])
        .arg(&csr));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "the CSR asks for serverAuth and clientAuth:\n{t}"
    );
    let igtf = dir.join("igtf.pem");
    ca.sign(&csr, &igtf);
    (le, igtf, out.join(format!("{NODE}.key")))
}

fn inspect(cert: &Path, json: bool) -> (Output, String) {
    let mut c = Command::new(bins::lvs_cert());
    c.arg("inspect").arg(cert).args(["--vip", NAME]);
    if json {
        c.arg("--json");
    }
    let o = run(&mut c);
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    (o, s)
}

/// `lvs-cert request` asks for clientAuth and names the profiles; `inspect` warns on a
/// serverAuth-only certificate (exit 0: a warning) and not on the IGTF-style one.
#[test]
fn inspect_warns_without_client_auth_and_request_asks_for_it() {
    // Removed on drop, even when an assertion fails.
    let tmp = lab::pebble::TempDir::new("tpci");
    let (le, igtf, _) = two_certs(tmp.path());

    let (o, s) = inspect(&le, false);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a warning, not a failure: {}",
        text(&o)
    );
    assert!(
        s.contains("key usage:  serverAuth (clientAuth MISSING, needed by a TPC client)"),
        "{s}"
    );
    assert!(
        s.contains("WARNING:    no clientAuth in its extendedKeyUsage (serverAuth)"),
        "{s}"
    );
    assert!(
        s.contains("  fix:      use a host certificate whose extendedKeyUsage keeps clientAuth, from an IGTF-accredited CA profile"),
        "{s}"
    );
    let (_, s) = inspect(&le, true);
    let v: Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["client_auth"], false, "{v}");
    assert_eq!(v["extended_key_usage"], serde_json::json!(["serverAuth"]));
    assert!(v["warnings"][0].as_str().unwrap().contains("IGTF"), "{v}");
    assert_eq!(v["ok"], true, "{v}");

    let (o, s) = inspect(&igtf, false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        s.contains(
            "key usage:  serverAuth, clientAuth (clientAuth allowed, needed by a TPC client)"
        ),
        "{s}"
    );
    assert!(!s.contains("WARNING"), "{s}");
    let (_, s) = inspect(&igtf, true);
    let v: Value = serde_json::from_str(&s).unwrap();
    assert_eq!(
        (v["client_auth"].clone(), v["warnings"].clone()),
        (Value::Bool(true), serde_json::json!([])),
        "{v}"
    );
}

/// doctor's `cert.client_auth` finding from `lvs-node -c CFG doctor --json ARGS` in the
/// node's namespace.
fn doctor_finding(lab: &DrLab, cfg: &Path, args: &str) -> Value {
    let o = lvs(&lab.reals[0].ns, cfg, &format!("doctor --json {args}"));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}\n{}", text(&o)));
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "cert.client_auth")
        .cloned()
        .unwrap_or_else(|| panic!("no cert.client_auth finding: {v}"))
}

/// The `certificate` check with `tpc_client = true` and doctor, on a running node whose
/// certificate is swapped from serverAuth-only to one with clientAuth.
#[test]
fn certificate_check_and_doctor_warn_without_client_auth() {
    let lab = DrLab::one_real("tpcc");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let (le, igtf, _) = two_certs(&dir.0);
    let cert = dir.join("hostcert.pem");
    std::fs::copy(&le, &cert).unwrap();
    let report_extra = format!("allow = [\"{DIRECTOR_IP}\", \"{}\"]", rs.ip);
    let checks = format!(
        "[[check]]\nname = \"hostcert\"\nkind = \"certificate\"\ncert = \"{}\"\nmin_days = 0\nhostnames = [\"{NAME}\"]\n\
         tpc_client = true\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1\n",
        cert.display()
    );
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            extra: &checks,
            report_extra: &report_extra,
            ..NodeOpts::default()
        },
    );
    let text_cfg = std::fs::read_to_string(&cfg).unwrap().replace(
        "[[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 1\n",
        "",
    );
    std::fs::write(&cfg, text_cfg).unwrap();
    let log = dir.join("agent.log");
    let agent = start_agent(rs, &cfg, &log, HTTP_PORT);

    // A warning keeps the node up: /health 200, the warning and its fix in /status.
    let detail = wait_for(Duration::from_secs(10), || {
        let d = status_detail(&lab, "hostcert")?;
        d.contains("WARNING").then_some(d)
    })
    .unwrap_or_else(|| {
        panic!(
            "no clientAuth warning in /status: {:?}",
            status_detail(&lab, "hostcert")
        )
    });
    assert!(
        detail.contains("WARNING: no clientAuth in its extendedKeyUsage (serverAuth)")
            && detail.contains("fix: use a host certificate whose extendedKeyUsage keeps clientAuth, from an IGTF-accredited CA profile"),
        "{detail}"
    );
    wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(5),
    )
    .expect("a clientAuth warning must not take the node out");
    // Logged once, not every probe.
    std::thread::sleep(Duration::from_secs(1));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains("no clientAuth in its extendedKeyUsage"))
            .count(),
        1,
        "{logged}"
    );
    let f = doctor_finding(&lab, &cfg, "");
    assert_eq!(f["severity"], "warn", "{f}");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("[[check]] hostcert (tpc_client = true)"),
        "{f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("IGTF-accredited CA profile"),
        "{f}"
    );

    // The certificate with clientAuth (renewed in place, as install does it).
    let tmp = dir.join("hostcert.pem.new");
    std::fs::copy(&igtf, &tmp).unwrap();
    std::fs::rename(&tmp, &cert).unwrap();
    wait_for(Duration::from_secs(10), || {
        let d = status_detail(&lab, "hostcert")?;
        (d.contains("clientAuth allowed (TPC client)") && !d.contains("WARNING")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "warning did not clear: {:?}",
            status_detail(&lab, "hostcert")
        )
    });
    let f = doctor_finding(&lab, &cfg, "");
    assert_eq!(f["severity"], "ok", "{f}");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("serverAuth, clientAuth"),
        "{f}"
    );

    // Without tpc_client: a node that runs an xrootd check presents its host certificate
    // (here --cert) in TPC, so doctor judges that one.
    let plain = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("tpc_client = true\n", "")
        + "[[check]]\nname = \"xrootd\"\nkind = \"xrootd\"\n";
    let cfg2 = dir.join("rs0").join("node2.toml");
    std::fs::write(&cfg2, plain).unwrap();
    let f = doctor_finding(&lab, &cfg2, &format!("--cert {}", le.display()));
    assert_eq!(f["severity"], "warn", "{f}");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("the host certificate (--cert), which XRootD and XrdHttp present"),
        "{f}"
    );
    let f = doctor_finding(&lab, &cfg2, &format!("--cert {}", igtf.display()));
    assert_eq!(f["severity"], "ok", "{f}");
    // XRootD's own config names the certificate it presents (`xrd.tls`): doctor judges
    // that one, not the host certificate GridFTP would use.
    let xrd = dir.join("rs0").join("xrootd-tpc.cfg");
    std::fs::write(
        &xrd,
        format!("xrd.port 1094\nxrd.tls {} /etc/unused.key\n", le.display()),
    )
    .unwrap();
    let f = doctor_finding(
        &lab,
        &cfg2,
        &format!("--cert {} --xrootd-conf {}", igtf.display(), xrd.display()),
    );
    assert_eq!(f["severity"], "warn", "{f}");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("named at {}:2", xrd.display())),
        "{f}"
    );

    rs.ns.signal(agent, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(rs.ns.wait(agent, Duration::from_secs(5)), Some(0));
}

fn status_detail(lab: &DrLab, name: &str) -> Option<String> {
    let out = lab.director.ns.run(&format!(
        "curl -s -m 2 http://{}:{HTTP_PORT}/status",
        lab.reals[0].ip
    ));
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["detail"].as_str().map(str::to_string))
}
