//! The certificates do their job: real GSI GridFTP transfers through the VIP
//! (`globus-url-copy gsiftp://VIP-NAME/...`, a user proxy from `grid-proxy-init`, a
//! gridmap), authenticated on every node by the one shared certificate (CN = the VIP's
//! name, SANs = the nodes). Twice: with the CSR from `lvs-cert request` signed by a test CA
//! (standing for an IGTF CA), and with the certificate `lvs-cert acme` issued from Pebble.
//!
//! The director is the nftables MAC-rewrite EMULATION of LVS-DR (tests/src/dr.rs): GSI
//! happens between the client and the node, which the director never looks into.

use lab::dr::{real_ip, Host, VIP};
use lab::gsi::{start_gridftp, TestCa, TrustDir};
use lab::pebble::{node_name, Pebble, PebbleOpts, VIP_HOST};
use lab::{bins, DrLab, LabOpts};
use std::path::{Path, PathBuf};

#[path = "daemon_util/mod.rs"]
mod util;
use util::TestDir;

fn hosts(nodes: usize) -> String {
    let mut h = format!("127.0.0.1 localhost\n{VIP} {VIP_HOST}\n");
    for i in 0..nodes {
        h.push_str(&format!("{} {}\n", real_ip(i), node_name(i)));
    }
    h
}

/// Four transfers through the VIP by name; each arrives intact, and both nodes served.
fn transfers_through_the_vip(
    lab: &DrLab,
    t: &TestDir,
    trust: &TrustDir,
    proxy: &Path,
    work: &[PathBuf],
) {
    let (src, sum) = lab::gridftp::make_file(&t.join("pub"), "data.bin", 3 << 20);
    lab.client.ns.write_etc("hosts", &hosts(lab.reals.len()));
    for n in 0..4 {
        let out = t.join(&format!("out{n}.bin"));
        let o = lab.client.ns.run(&format!(
            "X509_USER_PROXY={p} X509_CERT_DIR={tr} timeout 60 globus-url-copy gsiftp://{VIP_HOST}:2811{s} file://{o}",
            p = proxy.display(),
            tr = trust.0.display(),
            s = src.display(),
            o = out.display()
        ));
        assert!(
            o.status.success(),
            "GSI transfer {n} through the VIP failed: {}\n{}\nserver logs: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            work.iter()
                .map(|w| std::fs::read_to_string(w.join("gridftp.log.server")).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        assert_eq!(lab::gridftp::sha256(&out), sum, "transfer {n} not intact");
    }
    let served: Vec<usize> = work
        .iter()
        .map(|w| {
            std::fs::read_to_string(w.join("gridftp.log.transfers"))
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        })
        .collect();
    assert!(
        served.iter().all(|&n| n > 0),
        "every node should have served a transfer: {served:?}"
    );
    eprintln!("GSI transfers per node: {served:?}");
    // Without a proxy there is no anonymous fallback: the server refuses.
    let o = lab.client.ns.run(&format!(
        "X509_USER_PROXY=/nonexistent X509_CERT_DIR={} timeout 30 globus-url-copy gsiftp://{VIP_HOST}:2811{} file://{}",
        trust.0.display(),
        src.display(),
        t.join("nope.bin").display()
    ));
    assert!(
        !o.status.success(),
        "a client without credentials was served"
    );
}

fn start_servers(
    lab: &DrLab,
    t: &TestDir,
    cert: &Path,
    key: &Path,
    trust: &TrustDir,
) -> Vec<PathBuf> {
    let mut work = Vec::new();
    for (i, r) in lab.reals.iter().enumerate() {
        let w = t.join(&format!("gftp{i}"));
        start_gridftp(
            &r.ns,
            r.ip,
            &node_name(i),
            &hosts(lab.reals.len()),
            cert,
            key,
            trust,
            &w,
        );
        work.push(w);
    }
    work
}

/// `lvs-node up` with the sysctl method: the VIP on lo, ARP suppressed.
fn node_up(h: &Host, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip = \"{}\"\nstate_dir = \"{}/state\"\n[[vip]]\naddress = \"{VIP}\"\nports = [2811]\n",
            h.ip,
            dir.display()
        ),
    )
    .unwrap();
    lab::node::lvs_node_ok(h, &cfg, "up");
}

#[test]
fn gsi_gridftp_through_the_vip_with_a_ca_signed_shared_certificate() {
    let lab = DrLab::build("gsica", LabOpts::default());
    let t = TestDir::new(&lab.prefix);
    let ca = TestCa::new(&t.join("ca"));
    let trust = TrustDir::new(&t.join("certificates"));
    trust.add(&ca.cert);
    let req = t.join("req");
    std::fs::create_dir_all(&req).unwrap();
    let o = lab.client.ns.run(&format!(
        "{} request --vip {VIP_HOST} --alt {} --alt {} --out {}",
        bins::lvs_cert().display(),
        node_name(0),
        node_name(1),
        req.display()
    ));
    assert!(
        o.status.success(),
        "lvs-cert request: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let csr = std::fs::read_dir(&req)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "csr"))
        .expect("a CSR");
    let key = csr.with_extension("key");
    let cert = t.join("hostcert.pem");
    ca.sign(&csr, &cert);
    let proxy = ca.user_proxy(&trust);
    for (i, r) in lab.reals.iter().enumerate() {
        node_up(r, &t.join(&format!("node{i}")));
    }
    let work = start_servers(&lab, &t, &cert, &key, &trust);
    transfers_through_the_vip(&lab, &t, &trust, &proxy, &work);
}

#[test]
fn gsi_gridftp_through_the_vip_with_the_certificate_lvs_cert_acme_issued() {
    let lab = DrLab::build(
        "gsiacme",
        LabOpts {
            reals: 2,
            ports: vec![80, 2811],
            ..Default::default()
        },
    );
    let pebble = Pebble::start(&lab, 2, PebbleOpts::default());
    let t = TestDir::new(&lab.prefix);
    let (cert, key) = lab::pebble::issue_shared(&lab, &pebble, &t.0);
    // Pebble's root and intermediate in the Globus trust dir; the user's CA too.
    let trust = TrustDir::new(&t.join("certificates"));
    trust.add(&pebble.issuer_root);
    let inter = t.join("pebble-intermediate.pem");
    lab.client.ok(&format!(
        "awk 'BEGIN{{n=0}} /BEGIN CERT/{{n++}} n==2' {} > {}",
        cert.display(),
        inter.display()
    ));
    if std::fs::metadata(&inter)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
    {
        trust.add(&inter);
    }
    let ca = TestCa::new(&t.join("userca"));
    trust.add(&ca.cert);
    let proxy = ca.user_proxy(&trust);
    // GridFTP gets the leaf alone; the intermediate is in the trust dir. Pebble makes its
    // CA certificates valid until 2056, a GeneralizedTime, which Globus GSI (Debian 12)
    // reads as long expired when it is part of the host credential ("has expired ...
    // minutes ago"). Real CA certificates valid before 2050 use UTCTime and are unaffected.
    let leaf = t.join("tls/leaf.pem");
    lab.client.ok(&format!(
        "awk 'BEGIN{{n=0}} /BEGIN CERT/{{n++}} n==1' {} > {}",
        cert.display(),
        leaf.display()
    ));
    let work = start_servers(&lab, &t, &leaf, &key, &trust);
    transfers_through_the_vip(&lab, &t, &trust, &proxy, &work);
}

/// The per-node XRootD certificates (`lvs-cert request --xrootd`: CN = the node, SANs =
/// the node and the VIP's name), signed by the test CA, authenticate a real `xrootd` with
/// GSI on each node; `xrdcp root://VIP-NAME//...` through the VIP with a user proxy reads
/// the file from every node in turn.
#[test]
fn gsi_xrootd_through_the_vip_with_per_node_certificates() {
    use std::os::unix::fs::PermissionsExt;
    let lab = DrLab::build(
        "gsixrd",
        LabOpts {
            reals: 2,
            ports: vec![1094],
            ..Default::default()
        },
    );
    let t = TestDir::new(&lab.prefix);
    std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ca = TestCa::new(&t.join("ca"));
    let trust = TrustDir::new(&t.join("certificates"));
    trust.add(&ca.cert);
    let req = t.join("req");
    std::fs::create_dir_all(&req).unwrap();
    let o = lab.client.ns.run(&format!(
        "{} request --xrootd --vip {VIP_HOST} --alt {} --alt {} --out {}",
        bins::lvs_cert().display(),
        node_name(0),
        node_name(1),
        req.display()
    ));
    assert!(
        o.status.success(),
        "lvs-cert request --xrootd: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let proxy = ca.user_proxy(&trust);
    let data = t.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (src, sum) = lab::gridftp::make_file(&data, "x.bin", 1 << 20);
    let mut logs = Vec::new();
    for (i, r) in lab.reals.iter().enumerate() {
        node_up(r, &t.join(&format!("node{i}")));
        let name = node_name(i);
        let w = t.join(&format!("xrd{i}"));
        std::fs::create_dir_all(w.join("log")).unwrap();
        let (cert, key) = (w.join("hostcert.pem"), w.join("hostkey.pem"));
        ca.sign(&req.join(format!("{name}.csr")), &cert);
        std::fs::copy(req.join(format!("{name}.key")), &key).unwrap();
        std::fs::write(
            w.join("grid-mapfile"),
            format!("\"{}\" nobody\n", lab::gsi::USER_DN),
        )
        .unwrap();
        // xrootd runs as nobody (-R nobody): it must own its key (0400) and its log dir.
        r.ok(&format!(
            "chmod 755 {w} && chown -R nobody {w} && chmod 400 {key}",
            w = w.display(),
            key = key.display()
        ));
        let cfg = w.join("xrootd.cfg");
        std::fs::write(
            &cfg,
            format!(
                "all.export {data}\nxrd.port 1094\nxrootd.seclib libXrdSec.so\n\
                 sec.protocol gsi -certdir:{tr} -cert:{c} -key:{k} -gridmap:{g} -gmapopt:10 -crl:0\n\
                 sec.protbind * only gsi\n",
                data = data.display(),
                tr = trust.0.display(),
                c = cert.display(),
                k = key.display(),
                g = w.join("grid-mapfile").display(),
            ),
        )
        .unwrap();
        r.ns.write_etc("hosts", &hosts(2));
        let log = w.join("log/xrootd.log");
        r.ns.spawn_logged(
            &format!(
                "unshare -u sh -c 'hostname {name} && exec xrootd -R nobody -c {} -l {}'",
                cfg.display(),
                log.display()
            ),
            &w.join("stdout.log"),
        );
        let up = lab::wait_for(std::time::Duration::from_secs(10), || {
            r.ns.run("ss -Hltn 'sport = :1094' | grep -q LISTEN")
                .status
                .success()
                .then_some(())
        });
        assert!(
            up.is_some(),
            "xrootd did not listen on {name}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        logs.push(log);
    }
    lab.client.ns.write_etc("hosts", &hosts(2));
    for n in 0..4 {
        let out = t.join(&format!("xout{n}.bin"));
        let o = lab.client.ns.run(&format!(
            "X509_USER_PROXY={} X509_CERT_DIR={} timeout 60 xrdcp -f root://{VIP_HOST}:1094/{} {}",
            proxy.display(),
            trust.0.display(),
            src.display(),
            out.display()
        ));
        assert!(
            o.status.success(),
            "xrdcp {n} through the VIP: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            logs.iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        assert_eq!(lab::gridftp::sha256(&out), sum, "xrdcp {n} not intact");
    }
    let logins: Vec<usize> = logs
        .iter()
        .map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .matches(&format!("login as {}", lab::gsi::USER_DN))
                .count()
        })
        .collect();
    eprintln!("GSI xrootd logins per node: {logins:?}");
    assert!(
        logins.iter().all(|&n| n > 0),
        "both nodes must authenticate the user over GSI: {logins:?}"
    );
}
