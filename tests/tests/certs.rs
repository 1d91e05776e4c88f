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

    fn cert(&self, ns: &Netns, who: &str, extra: &str) -> Output {
        lvs_cert_in(ns, &self.acme_args(who, extra))
    }

    fn orders(&self) -> usize {
        // Pebble logs one "There are now N orders" ... count new-order requests instead.
        self.pebble
            .log_text()
            .lines()
            .filter(|l| l.contains("POST /order-plz"))
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
    assert_eq!(o.status.code(), Some(0), "{}\npebble:\n{}", text(&o), s.pebble.log_text());
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
        &format!("inspect {} --key {} {names} --days 1 --json", cert.display(), key.display()),
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
    let o = lvs_cert_in(&s.lab.client.ns, &format!("inspect {} --days 3650", cert.display()));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // openssl agrees: SANs, CN and a chain up to Pebble's root.
    let x = s.lab.client.ok(&format!("openssl x509 -in {} -noout -text", cert.display()));
    assert!(x.contains(&format!("CN = {VIP_HOST}")) || x.contains(&format!("CN={VIP_HOST}")), "{x}");
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
    let m1 = s.lab.client.ok(&format!("openssl x509 -in {} -noout -pubkey", cert.display()));
    let m2 = s.lab.client.ok(&format!("openssl pkey -in {} -pubout", key.display()));
    assert_eq!(m1, m2, "key does not match");

    // The Pebble log shows validation fetches for every name.
    let log = s.pebble.log_text();
    if std::env::var_os("SHOW_PEBBLE_LOG").is_some() {
        eprintln!("{log}");
    }
    assert_eq!(s.orders(), 1, "{log}");
}
