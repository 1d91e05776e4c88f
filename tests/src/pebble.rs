//! Pebble (Let's Encrypt's test CA) in its own namespace on the lab bridge, plus the
//! pieces an ACME lab needs: a TLS CA for Pebble's listener (Debian ships none), name
//! resolution through /etc/netns/NS/hosts, and the real servers serving a shared webroot
//! with `lvs-node serve-challenges` on VIP:80 and RIP:80.

use crate::dr::{DrLab, Host, VIP};
use crate::netns::{host, wait_for, Netns};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const PEBBLE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
pub const VIP_HOST: &str = "gridftp.lab.example";

pub fn node_name(i: usize) -> String {
    format!("gftp{}.lab.example", i + 1)
}

/// Joins a new namespace to the lab bridge (the `DrLab::build` pattern, kept here so the
/// lab itself stays untouched). `n` picks the MAC and the bridge port name.
pub fn add_host(lab: &DrLab, role: &str, ip: Ipv4Addr, n: usize) -> Host {
    let ns = Netns::new(&format!("{}{role}", lab.prefix));
    ns.disable_ipv6();
    let mac = format!("02:00:00:00:01:{n:02x}");
    let out = host(&format!(
        "ip link add name eth0 netns {ns} address {mac} type veth peer name x{n} netns {br}",
        ns = ns.name,
        br = lab.bridge.name
    ));
    assert!(
        out.status.success(),
        "veth: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.bridge.ok(&format!("ip link set x{n} master br0 up"));
    ns.ok(&format!(
        "ip addr add {ip}/24 dev eth0 && ip link set eth0 up"
    ));
    Host {
        ns,
        ip,
        ip6: String::new(),
        mac,
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(crate::netns::unique_prefix(tag));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default, Clone)]
pub struct PebbleOpts {
    /// Extra environment, e.g. ("PEBBLE_WFE_NONCEREJECT", "50").
    pub env: Vec<(String, String)>,
    /// External account binding keys, (key ID, base64url HMAC key). Non-empty: Pebble
    /// requires a binding for every new account.
    pub eab_keys: Vec<(String, String)>,
}

pub struct Pebble {
    pub host: Host,
    pub dir: TempDir,
    pub pid: u32,
    /// CA that signed Pebble's listener certificate: pass as `--root-ca`.
    pub tls_ca: PathBuf,
    /// Pebble's issuing root (new at every start), from the management port.
    pub issuer_root: PathBuf,
    pub log: PathBuf,
}

impl Pebble {
    pub fn directory(&self) -> String {
        format!("https://{PEBBLE_IP}:14000/dir")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts Pebble on the lab bridge. It resolves the VIP hostname to the VIP and each
    /// node name to its real IP, and validates HTTP-01 on port 80.
    pub fn start(lab: &DrLab, nodes: usize, opts: PebbleOpts) -> Pebble {
        let h = add_host(lab, "peb", PEBBLE_IP, 0x50);
        let dir = TempDir::new("peb");
        let d = dir.path().to_path_buf();
        // A tiny CA and a listener certificate for 192.0.2.50 (rustls wants a CA-issued leaf).
        let sh = |c: &str| {
            let o = host(&format!("cd {} && {c}", d.display()));
            assert!(
                o.status.success(),
                "{c}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=lab pebble tls ca' 2>/dev/null");
        sh("openssl req -newkey rsa:2048 -nodes -keyout key.pem -out tls.csr -subj '/CN=pebble' 2>/dev/null");
        std::fs::write(
            d.join("ext.cnf"),
            format!("subjectAltName=IP:{PEBBLE_IP},DNS:pebble\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        sh("openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext.cnf 2>/dev/null");
        let mac_keys: Vec<String> = opts
            .eab_keys
            .iter()
            .map(|(kid, key)| format!("{kid:?}: {key:?}"))
            .collect();
        std::fs::write(
            d.join("pebble.json"),
            format!(
                r#"{{"pebble": {{"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
  "certificate": "{d}/cert.pem", "privateKey": "{d}/key.pem", "httpPort": 80, "tlsPort": 5001,
  "ocspResponderURL": "", "externalAccountBindingRequired": {req},
  "externalAccountMACKeys": {{{keys}}}}}}}"#,
                d = d.display(),
                req = !opts.eab_keys.is_empty(),
                keys = mac_keys.join(", "),
            ),
        )
        .unwrap();
        let mut hosts = format!("127.0.0.1 localhost\n{VIP} {VIP_HOST}\n");
        for i in 0..nodes {
            hosts.push_str(&format!("{} {}\n", crate::dr::real_ip(i), node_name(i)));
        }
        h.ns.write_etc("hosts", &hosts);
        let mut env = String::from("PEBBLE_VA_NOSLEEP=1 ");
        for (k, v) in &opts.env {
            env.push_str(&format!("{k}={v} "));
        }
        let log = d.join("pebble.log");
        let pid = h.ns.spawn_logged(
            &format!("env {env} pebble -config {}/pebble.json", d.display()),
            &log,
        );
        let tls_ca = d.join("ca.pem");
        // Generous: the wait is not what is measured, and a loaded machine starts it slowly.
        let up = wait_for(Duration::from_secs(60), || {
            let o = h.ns.run(&format!(
                "curl -sf --cacert {} https://{PEBBLE_IP}:14000/dir",
                tls_ca.display()
            ));
            o.status.success().then_some(())
        });
        assert!(
            up.is_some(),
            "pebble did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let issuer_root = d.join("issuer-root.pem");
        h.ns.ok(&format!(
            "curl -sf --cacert {ca} https://{PEBBLE_IP}:15000/roots/0 -o {out}",
            ca = tls_ca.display(),
            out = issuer_root.display()
        ));
        Pebble {
            host: h,
            dir,
            pid,
            tls_ca,
            issuer_root,
            log,
        }
    }
}

/// Puts the VIP on lo with ARP suppression (what `lvs-node up` does with method sysctl)
/// and starts the challenge responder on VIP:80 and RIP:80 serving `webroot`.
pub fn serve_webroot(rs: &Host, webroot: &Path) -> u32 {
    rs.ok(&format!(
        "ip addr add {VIP}/32 dev lo && sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2"
    ));
    let pid = rs.ns.spawn(&format!(
        "{} serve-challenges --webroot {} --listen {VIP}:80 --listen {}:80",
        crate::bins::lvs_node().display(),
        webroot.display(),
        rs.ip
    ));
    let ok = wait_for(Duration::from_secs(30), || {
        let o = rs.ns.run(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' http://{}/.well-known/acme-challenge/x",
            rs.ip
        ));
        (String::from_utf8_lossy(&o.stdout) == "404").then_some(())
    });
    assert!(ok.is_some(), "responder on {} did not come up", rs.ns.name);
    pid
}

/// Hosts file for the nodes and the client, so lvs-cert could also resolve names.
pub fn write_hosts(lab: &DrLab, nodes: usize) {
    let mut hosts = format!("127.0.0.1 localhost\n{VIP} {VIP_HOST}\n");
    for i in 0..nodes {
        hosts.push_str(&format!("{} {}\n", crate::dr::real_ip(i), node_name(i)));
    }
    lab.client.ns.write_etc("hosts", &hosts);
    for r in &lab.reals {
        r.ns.write_etc("hosts", &hosts);
    }
}

/// The pool's shared SAN certificate (CN = VIP_HOST, SANs = every node) issued by
/// `lvs-cert acme` from the client through the VIP: serves a webroot under `dir` on every
/// real server (VIP on lo by hand, see `serve_webroot`) and returns (certificate, key).
pub fn issue_shared(lab: &DrLab, pebble: &Pebble, dir: &Path) -> (PathBuf, PathBuf) {
    let webroot = dir.join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    for r in &lab.reals {
        serve_webroot(r, &webroot);
    }
    let (cert, key) = (dir.join("tls/hostcert.pem"), dir.join("tls/hostkey.pem"));
    let mut args = format!(
        "acme --vip {VIP_HOST} --webroot {wr} --shared-dir {sh} --state-dir {st} \
         --directory {d} --root-ca {ca} --issuer-ca {iss} --cert {c} --key {k} --vip-ip {VIP}",
        wr = webroot.display(),
        sh = dir.join("shared").display(),
        st = dir.join("state").display(),
        d = pebble.directory(),
        ca = pebble.tls_ca.display(),
        iss = pebble.issuer_root.display(),
        c = cert.display(),
        k = key.display(),
    );
    for (i, r) in lab.reals.iter().enumerate() {
        args.push_str(&format!(
            " --alt {n} --node-ip {n}={ip}",
            n = node_name(i),
            ip = r.ip
        ));
    }
    let o = lab
        .client
        .ns
        .run(&format!("{} {args}", crate::bins::lvs_cert().display()));
    assert!(
        o.status.success(),
        "lvs-cert acme: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (cert, key)
}
