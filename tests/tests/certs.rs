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
             --directory {dir} --root-ca {ca} --issuer-ca {iss} --cert {c} --key {k} --vip-ip {VIP}",
            wr = self.p("webroot").display(),
            sh = self.p("shared").display(),
            st = self.p(&format!("state-{who}")).display(),
            dir = self.pebble.directory(),
            ca = self.pebble.tls_ca.display(),
            iss = self.pebble.issuer_root.display(),
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
    // Trust, only when asked: Pebble's root verifies the chain; the system store and a root
    // that did not issue it do not.
    let inspect = |args: &str| {
        lvs_cert_in(
            &s.lab.client.ns,
            &format!("inspect {} {args}", cert.display()),
        )
    };
    let json = |o: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
    };
    let o = inspect("--json");
    assert!(json(&o)["trusted"].is_null(), "{}", text(&o));
    let root = s.pebble.issuer_root.display();
    let o = inspect(&format!("--vip {VIP_HOST} --issuer-ca {root} --json"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["trusted"], true, "{}", text(&o));
    let o = inspect("--system-trust");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("trusted:    NO (the system trust store)")
            && out.contains(
                "PROBLEM:    not trusted: the certificate does not chain to the system trust store"
            ),
        "{out}"
    );
    let o = inspect(&format!("--issuer-ca {}", s.pebble.tls_ca.display()));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("not trusted: the certificate does not chain to"),
        "{}",
        text(&o)
    );
    // Both at once is a usage error that names the flag.
    let o = inspect(&format!("--system-trust --issuer-ca {root}"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--issuer-ca"),
        "{}",
        text(&o)
    );

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
            "install --xrootd --from {} --name {other} --alt {VIP_HOST} --cert {} --key {} --issuer-ca {}",
            s.p("shared").display(),
            s.p("rs3/hostcert.pem").display(),
            s.p("rs3/hostkey.pem").display(),
            s.pebble.issuer_root.display()
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

/// Retries of a rejected nonce, as `-v` logs them (instant-acme's own three silent retries
/// come first; ours log `badNonce ... (retry N)`).
fn bad_nonce_retries(o: &Output) -> usize {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains("badNonce") && l.contains("(retry "))
        .count()
}

#[test]
fn rejected_nonces_are_retried_and_a_ca_that_rejects_all_of_them_fails() {
    // Every nonce rejected: the run must fail on badNonce after its retries. This proves
    // Pebble really rejects nonces in this lab and that lvs-cert retries them.
    let s = Site::new(
        "nonce0",
        1,
        PebbleOpts {
            env: vec![("PEBBLE_WFE_NONCEREJECT".into(), "100".into())],
            ..Default::default()
        },
    );
    let o = s.cert(&s.lab.client.ns, "cl", "-v");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("badNonce"), "{}", text(&o));
    assert_eq!(bad_nonce_retries(&o), 7, "{}", text(&o));
    assert_eq!(s.orders(), 0);
    drop(s);
    // Half of them rejected: issuance succeeds, through retries.
    let s = Site::new(
        "nonce",
        3,
        PebbleOpts {
            env: vec![("PEBBLE_WFE_NONCEREJECT".into(), "50".into())],
            ..Default::default()
        },
    );
    let o = s.cert(&s.lab.client.ns, "cl", "-v");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s.orders(), 1);
    eprintln!(
        "badNonce retries beyond instant-acme's own: {}",
        bad_nonce_retries(&o)
    );
}

#[test]
fn an_untrusted_acme_server_certificate_is_named_and_not_retried() {
    let s = Site::new("tls", 1, PebbleOpts::default());
    // Pebble's issuing root is not the CA of its TLS listener: verification fails.
    let args = s.acme_args("cl", "-v").replace(
        &format!("--root-ca {}", s.pebble.tls_ca.display()),
        &format!("--root-ca {}", s.pebble.issuer_root.display()),
    );
    let t0 = std::time::Instant::now();
    let o = lvs_cert_in(&s.lab.client.ns, &args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid peer certificate") && err.contains("UnknownIssuer"),
        "{}",
        text(&o)
    );
    assert!(err.contains("not retried"), "{}", text(&o));
    assert!(!err.contains("(retry "), "{}", text(&o));
    eprintln!("failed in {:?}", t0.elapsed());
    assert!(!s.p("shared/lvs-cert.lock").exists(), "lock left behind");
}

#[test]
fn a_stalled_acme_server_times_out_and_releases_the_lock() {
    lab::require_root();
    let ns = Netns::new(&lab::netns::unique_prefix("stall"));
    let d = TempDir::new("stall");
    std::fs::create_dir_all(d.path().join("webroot")).unwrap();
    // Accepts TCP, never says a word (no TLS handshake).
    let pid = ns.spawn("socat TCP-LISTEN:14000,bind=127.0.0.1,reuseaddr,fork SYSTEM:'sleep 120'");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let o = lvs_cert_in(
        &ns,
        &format!(
            "acme --vip g.lab.example --alt a.lab.example --webroot {wr} --shared-dir {sh} \
             --state-dir {st} --directory https://127.0.0.1:14000/dir --vip-ip 127.0.0.1 \
             --node-ip a.lab.example=127.0.0.1 --http-timeout 2s -v",
            wr = d.path().join("webroot").display(),
            sh = d.path().join("shared").display(),
            st = d.path().join("state").display(),
        ),
    );
    let took = t0.elapsed();
    eprintln!("stalled CA: gave up after {took:?}");
    ns.kill(pid);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("within 2s"), "{}", text(&o));
    // Three attempts of 2 s and the back-off, not forever.
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    assert!(!d.path().join("shared/lvs-cert.lock").exists());
}

#[test]
fn the_shared_record_is_names_only_and_a_planted_hook_or_pair_is_never_used() {
    let s = Site::new("plant", 2, PebbleOpts::default());
    let o = s.cert(
        &s.lab.client.ns,
        "cl",
        &format!("--deploy-hook 'touch {}'", s.p("hook-cl").display()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(s.p("hook-cl").exists());
    let shared: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.p("shared/renewal.json")).unwrap()).unwrap();
    let keys: Vec<&String> = shared.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["alt", "vip"], "{shared}");

    // An NFS writer plants a record in the old, whole-command-line format.
    let pwned = s.p("PWNED");
    let planted = serde_json::json!({
        "pool": {"vip": VIP_HOST, "alt": [node_name(0), node_name(1)], "hosts_file": null},
        "webroot": s.p("webroot"), "shared_dir": s.p("shared"), "state_dir": "/tmp",
        "directory": s.pebble.directory(), "staging": false, "root_ca": s.pebble.tls_ca,
        "email": null, "cert": s.p("planted/hostcert.pem"), "key": s.p("planted/hostkey.pem"),
        "xrootd": false, "node": null, "deploy_hook": format!("touch {}", pwned.display()),
        "key_type": "Rsa2048", "vip_ip": VIP.to_string(),
        "node_ip": [format!("{}={}", node_name(0), real_ip(0)), format!("{}={}", node_name(1), real_ip(1))],
        "self_check_rounds": 0, "http_port": 80, "lock_stale": "30s", "lock_wait": "10m"
    });
    std::fs::write(s.p("shared/renewal.json"), planted.to_string()).unwrap();
    let rs2 = &s.lab.reals[1].ns;
    let o = lvs_cert_in(
        rs2,
        &format!(
            "renew --state-dir {} --shared-dir {} --force",
            s.p("state-rs2").display(),
            s.p("shared").display()
        ),
    );
    assert!(!pwned.exists(), "the planted hook ran: {}", text(&o));
    assert!(!s.p("planted").exists(), "the planted paths were written");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // With its own config, the node renews: names from the share, the rest its own.
    let cfg = s.p("rs2-renew.toml");
    let mut toml = format!(
        "webroot = \"{wr}\"\nshared_dir = \"{sh}\"\ndirectory = \"{dir}\"\nroot_ca = \"{ca}\"\n\
         issuer_ca = \"{iss}\"\ncert = \"{c}\"\nkey = \"{k}\"\nvip_ip = \"{VIP}\"\n\
         deploy_hook = \"touch {h}\"\nnode_ip = [",
        wr = s.p("webroot").display(),
        sh = s.p("shared").display(),
        dir = s.pebble.directory(),
        ca = s.pebble.tls_ca.display(),
        iss = s.pebble.issuer_root.display(),
        c = s.p("rs2/hostcert.pem").display(),
        k = s.p("rs2/hostkey.pem").display(),
        h = s.p("hook-rs2").display(),
    );
    for i in 0..2 {
        toml.push_str(&format!("\"{}={}\", ", node_name(i), real_ip(i)));
    }
    toml.push_str("]\n");
    std::fs::write(&cfg, toml).unwrap();
    let o = lvs_cert_in(
        rs2,
        &format!(
            "renew --state-dir {} --config {} --force",
            s.p("state-rs2").display(),
            cfg.display()
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(s.p("hook-rs2").exists(), "{}", text(&o));
    assert!(!pwned.exists() && !s.p("planted").exists());
    assert_eq!(s.orders(), 2);

    // A planted self-signed pair for the same names, newer than the CA's: never installed.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fake = s.p(&format!("shared/certs/{VIP_HOST}/9999999999-planted"));
    std::fs::create_dir_all(&fake).unwrap();
    let mut san = format!("subjectAltName=DNS:{VIP_HOST}");
    for i in 0..2 {
        san.push_str(&format!(",DNS:{}", node_name(i)));
    }
    s.lab.client.ok(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout {d}/privkey.pem -out {d}/fullchain.pem \
         -days 30 -subj '/CN={VIP_HOST}' -addext '{san}' 2>/dev/null",
        d = fake.display()
    ));
    let o = lvs_cert_in(
        rs2,
        &format!(
            "install --from {} --name {VIP_HOST} --alt {},{} --cert {} --key {} --issuer-ca {} -v",
            s.p("shared").display(),
            node_name(0),
            node_name(1),
            s.p("rs1/hostcert.pem").display(),
            s.p("rs1/hostkey.pem").display(),
            s.pebble.issuer_root.display()
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not chain"),
        "{}",
        text(&o)
    );
    assert_ne!(
        std::fs::read(s.p("rs1/hostcert.pem")).unwrap(),
        std::fs::read(fake.join("fullchain.pem")).unwrap(),
        "the planted certificate was installed"
    );
    let v = s.lab.client.ok(&format!(
        "openssl verify -CAfile {} -untrusted {c} {c}",
        s.pebble.issuer_root.display(),
        c = s.p("rs1/hostcert.pem").display()
    ));
    assert!(v.contains(": OK"), "{v}");
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
            ..Default::default()
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

/// A CA that requires external account binding (as InCommon/Sectigo and HARICA do):
/// Pebble with `externalAccountBindingRequired` and one MAC key.
#[test]
fn eab_issues_with_the_right_key_and_refuses_a_wrong_one_and_none() {
    // 32 bytes, base64url without padding, as CAs show them.
    const KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    const WRONG: &str = "AWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let s = Site::new(
        "eab",
        2,
        PebbleOpts {
            eab_keys: vec![("kid-1".into(), KEY.into())],
            ..Default::default()
        },
    );
    let state = s.p("state-cl");
    let accounts = || {
        std::fs::read_dir(&state)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("account-"))
                    .count()
            })
            .unwrap_or(0)
    };

    // No binding: the directory says it is required; the error names the flags.
    let o = s.cert(&s.lab.client.ns, "cl", "");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("requires external account binding (EAB)")
            && err.contains("--eab-file PATH")
            && err.contains("--eab-kid KID --eab-hmac-key KEY"),
        "{}",
        text(&o)
    );
    assert!(!state.exists(), "{}", text(&o));
    assert!(!s.p("cl/hostcert.pem").exists());

    // A wrong key: Pebble refuses the binding; the error names the flags and the key ID.
    let o = s.cert(
        &s.lab.client.ns,
        "cl",
        &format!("--eab-kid kid-1 --eab-hmac-key {WRONG}"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--eab-kid/--eab-hmac-key: the CA at")
            && err.contains("refused the external account binding for key ID `kid-1`")
            && err.contains("external account binding JWS verification error"),
        "{}",
        text(&o)
    );
    assert!(
        !err.contains(WRONG),
        "the key must not be printed: {}",
        text(&o)
    );
    assert_eq!(accounts(), 0);
    assert_eq!(s.orders(), 0);
    assert!(!s.p("cl/hostcert.pem").exists());

    // The right key from a 0600 file: registered once, bound, and issued as usual.
    let file = s.p("eab.toml");
    std::fs::write(&file, format!("kid = \"kid-1\"\nhmac_key = \"{KEY}\"\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = s.cert(
        &s.lab.client.ns,
        "cl",
        &format!("--eab-file {}", file.display()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(
            "registered an ACME account bound to the CA's key ID `kid-1` (from --eab-file {})",
            file.display()
        )),
        "{}",
        text(&o)
    );
    assert_eq!(accounts(), 1);
    assert_eq!(s.orders(), 1);
    let first = serial(&s, "cl");
    // The renewal record keeps the file's path, never the key.
    let record = std::fs::read_to_string(state.join("renewal.json")).unwrap();
    assert!(record.contains(&file.display().to_string()), "{record}");
    assert!(
        !record.contains(KEY) && !record.contains("eab_hmac_key") && !record.contains("kid-1"),
        "{record}"
    );

    // renew: the stored account is bound already; the file is not needed any more.
    std::fs::remove_file(&file).unwrap();
    let o = lvs_cert_in(
        &s.lab.client.ns,
        &format!("renew --force --state-dir {}", state.display()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("registered"),
        "{}",
        text(&o)
    );
    assert_eq!(accounts(), 1);
    assert_eq!(s.orders(), 2);
    assert_ne!(serial(&s, "cl"), first);
}

/// Another node's root plants `certs/<label>` as a symlink to a directory of its choice:
/// the certificate and key are never published there (the run fails naming it), and once
/// the symlink is gone the same run publishes as usual.
#[test]
fn publication_never_goes_through_a_symlinked_label_directory() {
    let s = Site::new("symlbl", 2, PebbleOpts::default());
    let victim = s.p("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::create_dir_all(s.p("shared/certs")).unwrap();
    let label = s.p(&format!("shared/certs/{VIP_HOST}"));
    std::os::unix::fs::symlink(&victim, &label).unwrap();
    let o = s.cert(&s.lab.client.ns, "cl", "");
    let planted: Vec<_> = std::fs::read_dir(&victim).unwrap().flatten().collect();
    assert!(
        planted.is_empty(),
        "published through the symlink into {}: {:?}\n{}",
        victim.display(),
        planted.iter().map(|e| e.file_name()).collect::<Vec<_>>(),
        text(&o)
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&label.display().to_string()) && err.contains("symbolic link"),
        "{}",
        text(&o)
    );
    assert!(!s.p("cl/hostcert.pem").exists(), "{}", text(&o));
    // The symlink removed: the next run publishes into a directory of its own.
    std::fs::remove_file(&label).unwrap();
    let o = s.cert(&s.lab.client.ns, "cl", "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(std::fs::symlink_metadata(&label).unwrap().is_dir());
    assert!(std::fs::read_dir(&victim).unwrap().next().is_none());
}

/// The `setpriv` options that give a process what `lvs-cert-renew.service` gives
/// `lvs-cert renew`: read from the shipped unit, so the test follows it. Fails loudly on a
/// unit setting it does not know how to reproduce.
fn renew_unit_setpriv() -> String {
    let unit =
        std::fs::read_to_string(lab::units::repo().join("systemd/lvs-cert-renew.service")).unwrap();
    let mut bounding = Vec::new();
    let mut ambient = Vec::new();
    let mut nnp = false;
    let mut bits = Vec::new();
    for l in unit.lines() {
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let caps = |v: &str| -> Vec<String> {
            v.split_whitespace()
                .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
                .collect()
        };
        match k.trim() {
            "CapabilityBoundingSet" => bounding.extend(caps(v)),
            "AmbientCapabilities" => ambient.extend(caps(v)),
            "NoNewPrivileges" => nnp = v.trim() == "yes",
            "SecureBits" => bits.extend(
                v.split_whitespace()
                    .map(|b| format!("+{}", b.replace('-', "_"))),
            ),
            "User" => assert_eq!(
                v.trim(),
                "root",
                "the unit's user changed: update this test"
            ),
            _ => {}
        }
    }
    assert!(
        !bounding.is_empty(),
        "the unit sets no CapabilityBoundingSet"
    );
    let mut cmd = format!(
        "setpriv --bounding-set -all,{} --inh-caps -all{} --ambient-caps -all{}",
        bounding.join(","),
        ambient.iter().map(|c| format!(",{c}")).collect::<String>(),
        ambient.iter().map(|c| format!(",{c}")).collect::<String>(),
    );
    if nnp {
        cmd.push_str(" --no-new-privs");
    }
    if !bits.is_empty() {
        cmd.push_str(&format!(" --securebits {}", bits.join(",")));
    }
    cmd
}

/// Issue 16, item 9: under the shipped renew unit (root with CAP_CHOWN only), an installed
/// key that belongs to xrootd with mode 0400 cannot be read back. `renew` must still see
/// that the installed pair is the current one: no reinstall, no deploy hook, every run.
/// The unit's capability set is reproduced with setpriv from the unit file itself (the
/// host is not booted with systemd), and checked to really forbid reading the key.
#[test]
fn renew_under_the_units_capabilities_leaves_an_xrootd_owned_key_alone() {
    let s = Site::new("unitkey", 2, PebbleOpts::default());
    let hook = s.p("hook-ran");
    let o = s.cert(
        &s.lab.client.ns,
        "cl",
        &format!("--deploy-hook 'touch {}'", hook.display()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(hook.exists(), "{}", text(&o));
    std::fs::remove_file(&hook).unwrap();
    let first = serial(&s, "cl");
    // XRootD's layout: the key is xrootd:xrootd 0400 (install keeps that owner).
    let xrootd = nix::unistd::User::from_name("xrootd")
        .unwrap()
        .expect("user xrootd (the xrootd package creates it; tests/setup.sh installs it)");
    let key = s.p("cl/hostkey.pem");
    std::os::unix::fs::chown(&key, Some(xrootd.uid.as_raw()), Some(xrootd.gid.as_raw())).unwrap();
    assert_eq!(mode(&key), 0o400);
    let key_before = std::fs::read(&key).unwrap();

    let setpriv = renew_unit_setpriv();
    // The reproduction holds: under these capabilities root cannot read that key.
    let o = s
        .lab
        .client
        .ns
        .run(&format!("{setpriv} cat {} >/dev/null", key.display()));
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "`{setpriv}` does not reproduce the unit (root read the xrootd key): {}",
        text(&o)
    );
    for run in 1..=2 {
        let o = s.lab.client.ns.run(&format!(
            "umask 077; {setpriv} {} renew --state-dir {}",
            lab::bins::lvs_cert().display(),
            s.p("state-cl").display()
        ));
        assert_eq!(o.status.code(), Some(0), "run {run}: {}", text(&o));
        assert!(
            !hook.exists(),
            "run {run}: the deploy hook ran (reinstalled): {}",
            text(&o)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("nothing to do") && !out.contains("installed "),
            "run {run}: {}",
            text(&o)
        );
    }
    assert_eq!(serial(&s, "cl"), first);
    assert_eq!(s.orders(), 1);
    assert_eq!(std::fs::read(&key).unwrap(), key_before);
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&key).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (xrootd.uid.as_raw(), 0o400));
}
