//! lvs-cert against real Pebble in the namespace lab: Pebble validates http-01 through the
//! VIP (delivered DR-style by the director emulation) and on the nodes' real IPs; the real
//! servers serve one shared webroot with `lvs-node serve-challenges`.

use lab::dr::{real_ip, VIP};
use lab::pebble::{node_name, serve_webroot, Pebble, PebbleOpts, TempDir, VIP_HOST};
use lab::{DrLab, LabOpts, Netns};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Site {
    lab: DrLab,
    pebble: Pebble,
    dir: TempDir,
    /// PIDs of the responders, one per real server (index = node).
    responders: Vec<u32>,
    nodes: usize,
}

impl Site {
    fn new(tag: &str, nodes: usize, opts: PebbleOpts) -> Site {
        let lab = DrLab::build(
            tag,
            LabOpts {
                reals: nodes,
                ipv6: false,
                ports: vec![80],
            },
        );
        let pebble = Pebble::start(&lab, nodes, opts);
        let dir = TempDir::new(tag);
        std::fs::create_dir_all(dir.path().join("webroot")).unwrap();
        let mut responders = Vec::new();
        for r in &lab.reals {
            responders.push(serve_webroot(r, &dir.path().join("webroot")));
        }
        Site {
            lab,
            pebble,
            dir,
            responders,
            nodes,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `lvs-cert acme` arguments for this site; `who` names per-host state and install paths.
    fn acme_args(&self, who: &str, extra: &str) -> String {
        let mut a = format!(
            "acme --vip {VIP_HOST} --webroot {wr} --shared-dir {sh} --state-dir {st} \
             --directory {dir} --root-ca {ca} --cert {c} --key {k} --vip-ip {VIP}",
            wr = self.p("webroot").display(),
            sh = self.p("shared").display(),
            st = self.p(&format!("state-{who}")).display(),
            dir = self.pebble.directory(),
            ca = self.pebble.tls_ca.display(),
            c = self.p(&format!("{who}/hostcert.pem")).display(),
            k = self.p(&format!("{who}/hostkey.pem")).display(),
        );
        for i in 0..self.nodes {
            a.push_str(&format!(
                " --alt {n} --node-ip {n}={ip}",
                n = node_name(i),
                ip = real_ip(i)
            ));
        }
        format!("{a} {extra}")
    }

    /// The same, but the self-check resolves the VIP and node names itself (through the
    /// namespace's /etc/netns hosts file, as it would through DNS).
    fn acme_args_resolving(&self, who: &str, extra: &str) -> String {
        lab::pebble::write_hosts(&self.lab, self.nodes);
        self.acme_args(who, extra)
            .split(" --node-ip ")
            .map(|part| match part.split_once(' ') {
                Some((first, rest)) if first.contains('=') => rest.to_string(),
                _ => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
            .replace(&format!(" --vip-ip {VIP}"), "")
    }

    fn cert(&self, ns: &Netns, who: &str, extra: &str) -> Output {
        lvs_cert_in(ns, &self.acme_args(who, extra))
    }

    fn orders(&self) -> usize {
        // One line per order Pebble accepted (a badNonce-rejected request adds none).
        self.pebble
            .log_text()
            .lines()
            .filter(|l| l.contains("Added order"))
            .count()
    }

    /// Challenges the client told Pebble to validate.
    fn challenges_ready(&self) -> usize {
        self.pebble
            .log_text()
            .lines()
            .filter(|l| l.contains("POST /chalZ/"))
            .count()
    }
}

fn lvs_cert_in(ns: &Netns, args: &str) -> Output {
    ns.run(&format!("{} {args}", lab::bins::lvs_cert().display()))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn tokens_left(site: &Site) -> usize {
    std::fs::read_dir(site.p("webroot/.well-known/acme-challenge"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn issues_for_vip_and_three_nodes_through_the_vip() {
    let s = Site::new("iss", 3, PebbleOpts::default());
    let o = s.cert(&s.lab.client.ns, "cl", "");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\npebble:\n{}",
        text(&o),
        s.pebble.log_text()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("X509_USER_CERT="), "{out}");
    let cert = s.p("cl/hostcert.pem");
    let key = s.p("cl/hostkey.pem");
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&key), 0o400);
    assert_eq!(tokens_left(&s), 0, "tokens left behind");
    let acct: Vec<_> = std::fs::read_dir(s.p("state-cl"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("account-"))
        .collect();
    assert_eq!(acct.len(), 1);
    assert_eq!(mode(&acct[0].path()), 0o600);

    // inspect: names, key, not expiring within 1 day.
    let mut names = format!("--vip {VIP_HOST}");
    for i in 0..3 {
        names.push_str(&format!(" --alt {}", node_name(i)));
    }
    let o = lvs_cert_in(
        &s.lab.client.ns,
        &format!(
            "inspect {} --key {} {names} --days 1 --json",
            cert.display(),
            key.display()
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["common_name"], VIP_HOST);
    assert_eq!(j["key_match"], true);
    // A name it does not have, and a too-long horizon: exit 1.
    let o = lvs_cert_in(
        &s.lab.client.ns,
        &format!("inspect {} --alt other.lab.example", cert.display()),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = lvs_cert_in(
        &s.lab.client.ns,
        &format!("inspect {} --days 3650", cert.display()),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // openssl agrees: SANs, CN and a chain up to Pebble's root.
    let x = s
        .lab
        .client
        .ok(&format!("openssl x509 -in {} -noout -text", cert.display()));
    assert!(
        x.contains(&format!("CN = {VIP_HOST}")) || x.contains(&format!("CN={VIP_HOST}")),
        "{x}"
    );
    for i in 0..3 {
        assert!(x.contains(&format!("DNS:{}", node_name(i))), "{x}");
    }
    assert!(x.contains(&format!("DNS:{VIP_HOST}")), "{x}");
    let v = s.lab.client.ok(&format!(
        "openssl verify -CAfile {} -untrusted {c} {c}",
        s.pebble.issuer_root.display(),
        c = cert.display()
    ));
    assert!(v.contains(": OK"), "{v}");
    let m1 = s.lab.client.ok(&format!(
        "openssl x509 -in {} -noout -pubkey",
        cert.display()
    ));
    let m2 = s
        .lab
        .client
        .ok(&format!("openssl pkey -in {} -pubout", key.display()));
    assert_eq!(m1, m2, "key does not match");

    // The Pebble log shows validation fetches for every name.
    let log = s.pebble.log_text();
    if std::env::var_os("SHOW_PEBBLE_LOG").is_some() {
        eprintln!("{log}");
    }
    assert_eq!(s.orders(), 1, "{log}");
}

fn serial(site: &Site, who: &str) -> String {
    let o = lvs_cert_in(
        &site.lab.client.ns,
        &format!(
            "inspect {} --json",
            site.p(&format!("{who}/hostcert.pem")).display()
        ),
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect json");
    j["serial"].as_str().unwrap().to_string()
}

#[test]
fn xrootd_mode_issues_one_certificate_per_node_node_name_first() {
    let s = Site::new("xrd", 3, PebbleOpts::default());
    let me = node_name(1);
    let args = s.acme_args_resolving("cl", &format!("--xrootd --node {me}"));
    assert!(
        !args.contains("--node-ip") && !args.contains("--vip-ip"),
        "{args}"
    );
    let o = lvs_cert_in(&s.lab.client.ns, &args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        text(&o),
        s.pebble.log_text()
    );
    assert_eq!(s.orders(), 3, "one order per node");
    let x = s.lab.client.ok(&format!(
        "openssl x509 -in {} -noout -subject -ext subjectAltName",
        s.p("cl/hostcert.pem").display()
    ));
    assert!(
        x.contains(&format!("CN = {me}")) || x.contains(&format!("CN={me}")),
        "{x}"
    );
    assert!(
        x.contains(&format!("DNS:{me}")) && x.contains(&format!("DNS:{VIP_HOST}")),
        "{x}"
    );
    // Every node's certificate is published; another node installs its own from there.
    for i in 0..3 {
        let n = node_name(i);
        assert!(
            s.p(&format!("shared/certs/{n}")).is_dir(),
            "{n} not published"
        );
    }
    let other = node_name(2);
    let o = lvs_cert_in(
        &s.lab.reals[2].ns,
        &format!(
            "install --xrootd --from {} --name {other} --alt {VIP_HOST} --cert {} --key {}",
            s.p("shared").display(),
            s.p("rs3/hostcert.pem").display(),
            s.p("rs3/hostkey.pem").display()
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = lvs_cert_in(
        &s.lab.client.ns,
        &format!(
            "inspect {} --key {} --vip {other} --alt {VIP_HOST}",
            s.p("rs3/hostcert.pem").display(),
            s.p("rs3/hostkey.pem").display()
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn self_check_names_the_node_that_does_not_serve_and_pebble_sees_no_ready_challenge() {
    let s = Site::new("slf", 3, PebbleOpts::default());
    // Node 3 serves some other directory instead of the shared webroot.
    let other = s.p("not-shared");
    std::fs::create_dir_all(&other).unwrap();
    let rs3 = &s.lab.reals[2];
    rs3.ns.kill(s.responders[2]);
    rs3.ns.spawn(&format!(
        "{} serve-challenges --webroot {} --listen {VIP}:80 --listen {}:80",
        lab::bins::lvs_node().display(),
        other.display(),
        rs3.ip
    ));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = s.cert(&s.lab.client.ns, "cl", "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("node {}", node_name(2))), "{err}");
    assert!(!err.contains(&format!("node {} ", node_name(0))), "{err}");
    assert_eq!(s.challenges_ready(), 0, "{}", s.pebble.log_text());
    assert_eq!(tokens_left(&s), 0, "tokens left behind");
    assert!(!s.p("cl/hostcert.pem").exists());
}

#[test]
fn issuance_succeeds_when_pebble_rejects_half_the_nonces() {
    let s = Site::new(
        "nonce",
        3,
        PebbleOpts {
            env: vec![("PEBBLE_WFE_NONCEREJECT".into(), "50".into())],
        },
    );
    let o = s.cert(&s.lab.client.ns, "cl", "-v");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = s.pebble.log_text();
    assert!(log.contains("reject 50% of good nonces"), "{log}");
}

#[test]
fn three_concurrent_runs_from_three_nodes_make_exactly_one_order() {
    let s = Site::new("conc", 3, PebbleOpts::default());
    let bin = lab::bins::lvs_cert();
    let mut pids = Vec::new();
    for (i, r) in s.lab.reals.iter().enumerate() {
        let who = format!("rs{}", i + 1);
        let log = s.p(&format!("{who}.log"));
        pids.push((
            i,
            r.ns.spawn_logged(
                &format!("{} {}", bin.display(), s.acme_args(&who, "")),
                &log,
            ),
        ));
    }
    for (i, pid) in pids {
        let code = s.lab.reals[i]
            .ns
            .wait(pid, std::time::Duration::from_secs(120));
        let log = std::fs::read_to_string(s.p(&format!("rs{}.log", i + 1))).unwrap_or_default();
        assert_eq!(code, Some(0), "node {i}: {log}");
    }
    assert_eq!(s.orders(), 1, "{}", s.pebble.log_text());
    let serials: Vec<String> = (1..=3).map(|i| serial(&s, &format!("rs{i}"))).collect();
    assert!(serials.iter().all(|x| x == &serials[0]), "{serials:?}");
    assert!(!s.p("shared/lvs-cert.lock").exists(), "lock left behind");
}

#[test]
fn renew_is_a_no_op_on_a_fresh_certificate_and_issues_with_force() {
    let s = Site::new("renew", 2, PebbleOpts::default());
    let o = s.cert(&s.lab.client.ns, "cl", "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let first = serial(&s, "cl");
    // acme again: nothing to do.
    let o = s.cert(&s.lab.client.ns, "cl", "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing to do"),
        "{}",
        text(&o)
    );
    let renew = format!("renew --state-dir {}", s.p("state-cl").display());
    let o = lvs_cert_in(&s.lab.client.ns, &renew);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing to do"),
        "{}",
        text(&o)
    );
    assert_eq!(s.orders(), 1);
    assert_eq!(serial(&s, "cl"), first);
    let hook = s.p("hook-ran");
    let o = lvs_cert_in(&s.lab.client.ns, &format!("{renew} --force"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s.orders(), 2);
    assert_ne!(serial(&s, "cl"), first);
    // A deploy hook runs after an install.
    let o = s.cert(
        &s.lab.client.ns,
        "cl",
        &format!(
            "--force --deploy-hook 'echo $LVS_CERT_CERT > {}'",
            hook.display()
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let h = std::fs::read_to_string(&hook).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert!(h.contains("cl/hostcert.pem"), "{h}");
}

#[test]
fn live_certificate_survives_a_failed_issuance_and_a_broken_install() {
    // No authorization reuse: the forced re-issue must validate again (and fail).
    let s = Site::new(
        "live",
        2,
        PebbleOpts {
            env: vec![("PEBBLE_AUTHZREUSE".into(), "0".into())],
        },
    );
    let o = s.cert(&s.lab.client.ns, "cl", "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let cert = std::fs::read(s.p("cl/hostcert.pem")).unwrap();
    let key = std::fs::read(s.p("cl/hostkey.pem")).unwrap();
    // Node 2 stops serving: the forced issuance fails before validation.
    s.lab.reals[1].ns.kill(s.responders[1]);
    let o = s.cert(&s.lab.client.ns, "cl", "--force");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read(s.p("cl/hostcert.pem")).unwrap(), cert);
    assert_eq!(std::fs::read(s.p("cl/hostkey.pem")).unwrap(), key);
    // A published pair whose key does not match is never installed.
    let bad = s.p("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("fullchain.pem"), &cert).unwrap();
    s.lab.client.ok(&format!(
        "openssl genrsa -out {} 2048 2>/dev/null",
        bad.join("privkey.pem").display()
    ));
    let o = lvs_cert_in(
        &s.lab.client.ns,
        &format!(
            "install --from {} --cert {} --key {}",
            bad.display(),
            s.p("cl/hostcert.pem").display(),
            s.p("cl/hostkey.pem").display()
        ),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read(s.p("cl/hostcert.pem")).unwrap(), cert);
    assert_eq!(std::fs::read(s.p("cl/hostkey.pem")).unwrap(), key);
}

#[test]
fn sigterm_during_the_self_check_removes_tokens_and_releases_the_lock() {
    let s = Site::new("term", 2, PebbleOpts::default());
    // Node 2 accepts on port 80 but never answers: the self-check waits on it.
    let rs2 = &s.lab.reals[1];
    rs2.ns.kill(s.responders[1]);
    rs2.ns.spawn(&format!(
        "socat TCP-LISTEN:80,bind={},reuseaddr,fork SYSTEM:'sleep 30'",
        rs2.ip
    ));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = s.p("term.log");
    let pid = s.lab.client.ns.spawn_logged(
        &format!(
            "{} {}",
            lab::bins::lvs_cert().display(),
            s.acme_args("cl", "")
        ),
        &log,
    );
    let seen = lab::wait_for(std::time::Duration::from_secs(20), || {
        (tokens_left(&s) > 0 && s.p("shared/lvs-cert.lock").exists()).then_some(())
    });
    assert!(
        seen.is_some(),
        "no tokens appeared: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    s.lab
        .client
        .ns
        .signal(pid, nix::sys::signal::Signal::SIGTERM);
    let code = s
        .lab
        .client
        .ns
        .wait(pid, std::time::Duration::from_secs(10));
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("terminated"), "{out}");
    assert_eq!(tokens_left(&s), 0, "tokens left behind");
    assert!(!s.p("shared/lvs-cert.lock").exists(), "lock left behind");
    assert_eq!(s.challenges_ready(), 0);
}
