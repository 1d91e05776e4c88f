//! `lvs-node nagios`, the Nagios/Icinga/CheckMK plugin, against a real `lvs-node run` and a
//! real globus-gridftp-server in the namespace lab: each state it reports (OK, drain, maint,
//! down with the failing check named, data plane drift, certificate expiry at the warning
//! and critical thresholds, an agent that refuses or does not answer) with its exit code,
//! status line and performance data.

mod daemon_util;

use daemon_util::*;
use lab::dr::{Host, VIP};
use lab::{gridftp, DrLab};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A self-signed certificate for gridftp.lab valid for `days` days (`days - 1` full days
/// left when this returns).
fn make_cert(dir: &Path, days: u32) -> PathBuf {
    let cert = dir.join(format!("cert-{days}d.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            &days.to_string(),
            "-subj",
            "/CN=gridftp.lab",
            "-addext",
            "subjectAltName=DNS:gridftp.lab",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("key-{days}d.pem")))
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // notAfter is exactly `days` after this second: once it has passed, `days - 1` full
    // days are left, whatever the machine's speed.
    std::thread::sleep(Duration::from_millis(1100));
    cert
}

struct Node {
    lab: DrLab,
    dir: TestDir,
    cfg: PathBuf,
    agent: u32,
    gridftp: u32,
}

impl Node {
    fn rs(&self) -> &Host {
        &self.lab.reals[0]
    }

    /// Runs the plugin on the node as NRPE would (as root, e.g. through sudo).
    fn nagios(&self, args: &str) -> (i32, String) {
        let out: Output = lvs(&self.rs().ns, &self.cfg, &format!("nagios {args}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "nagios {args} -> {:?}\n{text}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rs0/agent.log")).unwrap_or_default()
    }
}

/// One real server with GridFTP and the agent (data plane managed, a certificate check on a
/// certificate valid `cert_days`), up and answering 200. `report_extra` goes in [report].
fn node(tag: &str, cert_days: u32, manage: bool, report_extra: &str) -> Node {
    let lab = DrLab::one_real(tag);
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let gridftp = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &dir.join("gridftp.log"));
    let cert = make_cert(&dir.0, cert_days);
    let extra = format!(
        "[[check]]\nname = \"hostcert\"\nkind = \"certificate\"\ncert = \"{}\"\nmin_days = 1\n\
         interval = \"1s\"\nrise = 1\nfall = 1\n",
        cert.display()
    );
    let sub = dir.join("rs0");
    std::fs::create_dir_all(&sub).unwrap();
    // The shared template with the certificate check added before [report].
    // The director and the node itself (where the plugin runs) may read /status.
    let allow = format!("allow = [\"{}\", \"{}\"]", lab::dr::DIRECTOR_IP, rs.ip);
    let opts = NodeOpts {
        manage_dataplane: manage,
        report_extra: if report_extra.is_empty() {
            &allow
        } else {
            report_extra
        },
        ..NodeOpts::default()
    };
    // A loaded test machine must not fail the GridFTP check by a slow banner.
    let text = node_toml(rs, &sub, &opts)
        .replacen("[report]", &format!("{extra}[report]"), 1)
        .replace(
            "interval = \"500ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 1",
            "interval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 2",
        );
    assert!(text.contains("fall = 2"), "{text}");
    let cfg = sub.join("node.toml");
    std::fs::write(&cfg, text).unwrap();
    if !manage {
        // The data plane as `lvs-node up` puts it; the agent only observes it.
        let out = lvs(&rs.ns, &cfg, "up");
        assert!(
            out.status.success(),
            "lvs-node up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let agent = rs.ns.spawn_logged(
        &format!(
            "{} -c {} -v run",
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &sub.join("agent.log"),
    );
    let n = Node {
        agent,
        gridftp,
        cfg,
        dir,
        lab,
    };
    // Seen from the director, which every `allow` in these tests admits.
    let up = wait_health(
        &n.lab.director.ns,
        n.rs().ip,
        HTTP_PORT,
        200,
        Duration::from_secs(15),
    );
    assert!(up.is_some(), "agent not up: {}", n.log());
    n
}

fn status_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[test]
fn ok_then_drain_maint_and_resume() {
    let n = node("ngok", 90, true, "");
    let (code, out) = n.nagios("");
    assert_eq!(code, 0, "{out}\n{}", n.log());
    let line = status_line(&out);
    assert!(
        line.starts_with("LVS-NODE OK - up, weight 100/100, 0 session(s)"),
        "{line}"
    );
    assert!(
        line.contains("data plane converged (1 VIP(s), arp sysctl)"),
        "{line}"
    );
    assert!(line.contains("valid for 89 more day(s)"), "{line}");
    let perf = line.split_once(" | ").expect("performance data").1;
    for want in [
        "weight=100;;;0;100",
        "sessions=0;;;0",
        "failing_checks=0;;0;0",
        "drift_items=0;;0;0",
        "cert_days=89;14:;7:",
        "repairs=0c",
    ] {
        assert!(perf.split(' ').any(|p| p == want), "no {want} in {perf}");
    }
    assert!(out.contains("\ncheck gridftp: up: "), "{out}");

    let d = lvs(&n.rs().ns, &n.cfg, "drain --reason 'kernel update'");
    assert!(d.status.success());
    let (code, out) = n.nagios("");
    assert_eq!(code, 1, "{out}");
    assert!(
        status_line(&out).starts_with("LVS-NODE WARNING - drained: kernel update since 20"),
        "{out}"
    );
    assert!(status_line(&out).contains("weight=0;;;0;100"), "{out}");

    let m = lvs(&n.rs().ns, &n.cfg, "drain --maint --reason 'disk swap'");
    assert!(m.status.success());
    let (code, out) = n.nagios("");
    assert_eq!(code, 1, "{out}");
    assert!(
        status_line(&out).starts_with("LVS-NODE WARNING - maintenance: disk swap since 20"),
        "{out}"
    );

    assert!(lvs(&n.rs().ns, &n.cfg, "resume").status.success());
    wait_health(
        &n.rs().ns,
        n.rs().ip,
        HTTP_PORT,
        200,
        Duration::from_secs(5),
    )
    .expect("up after resume");
    let (code, out) = n.nagios("");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn down_names_the_failing_check() {
    let n = node("ngdown", 90, true, "");
    n.rs().ns.kill(n.gridftp);
    wait_health(
        &n.rs().ns,
        n.rs().ip,
        HTTP_PORT,
        503,
        Duration::from_secs(5),
    )
    .expect("503 after killing gridftp");
    let (code, out) = n.nagios("");
    assert_eq!(code, 2, "{out}");
    let line = status_line(&out);
    assert!(
        line.starts_with("LVS-NODE CRITICAL - down: failing gridftp (connection refused)"),
        "{line}"
    );
    assert!(line.contains("failing_checks=1;;0;0"), "{line}");
    assert!(
        out.contains("\ncheck gridftp: DOWN: connection refused"),
        "{out}"
    );
}

#[test]
fn data_plane_drift_is_critical_until_repaired() {
    // The agent only observes (manage_dataplane = false), so a drift stays.
    let n = node("ngdrift", 90, false, "");
    let (code, out) = n.nagios("");
    assert_eq!(code, 0, "{out}\n{}", n.log());
    n.rs().ok(&format!("ip addr del {VIP}/32 dev lo"));
    n.rs().ok("sysctl -qw net.ipv4.conf.all.arp_ignore=0");
    let (code, out) = n.nagios("");
    assert_eq!(code, 2, "{out}");
    let line = status_line(&out);
    assert!(line.starts_with("LVS-NODE CRITICAL - "), "{line}");
    assert!(line.contains("data plane drift: "), "{line}");
    assert!(
        line.contains(&format!("vip {VIP}: absent (want /32 on lo)")),
        "{line}"
    );
    assert!(
        line.contains("sysctl net.ipv4.conf.all.arp_ignore: is 0 (want 1)"),
        "{line}"
    );
    assert!(line.contains("drift_items=2;;0;0"), "{line}");
    // The agent's own data plane check agrees.
    assert!(line.contains("down: failing dataplane ("), "{line}");

    assert!(lvs(&n.rs().ns, &n.cfg, "up").status.success());
    wait_health(
        &n.rs().ns,
        n.rs().ip,
        HTTP_PORT,
        200,
        Duration::from_secs(5),
    )
    .expect("up after `lvs-node up`");
    let (code, out) = n.nagios("");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn certificate_expiry_thresholds() {
    // Valid 10 days: 9 full days left.
    let n = node("ngcert", 10, true, "");
    let (code, out) = n.nagios("");
    assert_eq!(code, 1, "{out}");
    let line = status_line(&out);
    assert!(
        line.starts_with("LVS-NODE WARNING - certificate ")
            && line.contains("cert-10d.pem expires in 9 day(s) (warning below 14)"),
        "{line}"
    );
    assert!(line.contains("cert_days=9;14:;7:"), "{line}");

    let (code, out) = n.nagios("--cert-warn 30 --cert-crit 10");
    assert_eq!(code, 2, "{out}");
    assert!(
        status_line(&out).contains("expires in 9 day(s) (critical below 10)"),
        "{out}"
    );
    let (code, out) = n.nagios("--cert-warn 5 --cert-crit 3");
    assert_eq!(code, 0, "{out}");

    // --cert overrides the configured check's certificate.
    let long = make_cert(&n.dir.0, 400);
    let (code, out) = n.nagios(&format!("--cert {}", long.display()));
    assert_eq!(code, 0, "{out}");
    assert!(
        status_line(&out).contains("cert-400d.pem valid for 399 more day(s)"),
        "{out}"
    );

    let (code, out) = n.nagios("--cert /nonexistent/hostcert.pem");
    assert_eq!(code, 2, "{out}");
    assert!(
        status_line(&out).contains("cannot read /nonexistent/hostcert.pem"),
        "{out}"
    );

    // Bad thresholds are the plugin's usage error: UNKNOWN.
    let (code, out) = n.nagios("--cert-warn 5 --cert-crit 10");
    assert_eq!(code, 3, "{out}");
    assert!(
        status_line(&out)
            .starts_with("LVS-NODE UNKNOWN - --cert-crit 10 is more than --cert-warn 5"),
        "{out}"
    );
}

#[test]
fn refused_agent_is_read_from_the_control_socket_and_a_dead_or_hung_agent_is_critical() {
    // Only the director may read the report endpoint: the plugin on the node is refused,
    // and, run as root, reads the same status from the agent's root-only control socket
    // (no `[report] allow` entry for the node itself, which would give local users /status).
    let n = node("ngdead", 90, true, "allow = [\"192.0.2.2\"]");
    let (code, out) = n.nagios("");
    assert!(
        !out.contains("UNKNOWN") && out.contains("read from the control socket"),
        "{out}"
    );
    // The agent's own judgement, as over HTTP: this lab node has no GridFTP, so it is down.
    assert!(
        (code == 0 && status_line(&out).starts_with("LVS-NODE OK"))
            || (code == 2 && status_line(&out).starts_with("LVS-NODE CRITICAL - ")),
        "{out}"
    );

    // Hung (stopped): no answer within the timeout.
    n.rs().ns.signal(n.agent, nix::sys::signal::Signal::SIGSTOP);
    let (code, out) = n.nagios("--timeout 1s");
    assert_eq!(code, 2, "{out}");
    assert!(
        status_line(&out).starts_with(&format!(
            "LVS-NODE CRITICAL - agent not answering at http://{}:{HTTP_PORT}/status: no answer within 1s",
            n.rs().ip
        )),
        "{out}"
    );

    // Dead: connection refused.
    n.rs().ns.kill(n.agent);
    let (code, out) = n.nagios("");
    assert_eq!(code, 2, "{out}");
    assert!(
        status_line(&out).starts_with(&format!(
            "LVS-NODE CRITICAL - agent not answering at http://{}:{HTTP_PORT}/status: connection refused",
            n.rs().ip
        )),
        "{out}"
    );
}

#[test]
fn bad_usage_and_bad_config_are_unknown() {
    let bin = lab::bins::lvs_node();
    let out = std::process::Command::new(&bin)
        .args(["nagios", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("LVS-NODE UNKNOWN - "), "{s}");
    assert!(s.contains("--no-such-flag"), "{s}");

    let out = std::process::Command::new(&bin)
        .args(["-c", "/nonexistent/node.toml", "nagios"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.starts_with("LVS-NODE UNKNOWN - bad config: ") && s.contains("/nonexistent/node.toml"),
        "{s}"
    );
}
