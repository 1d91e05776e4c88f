//! A WLCG storage pool behind the REAL IPVS director (the qemu guest of `vm.rs`): what a
//! site runs in 2026. Every node serves `root://` and `davs://` from Debian's XRootD 5.5.3
//! (XrdHttp with HTTP third-party copy, libXrdHttpTPC) and accepts only tokens
//! (libXrdAccSciTokens: the audience must be the VIP's URL or host name). A token issuer
//! publishes its JWKS over HTTPS, and a second site ("site.lab", outside the pool) is the
//! other end of third-party copies.
//!
//! Why each piece is what it is:
//! - The nodes share one storage directory, as the gateways of a site share their file
//!   system (CephFS, GPFS): a file uploaded through the VIP to one node is read back through
//!   the VIP from whichever node the director picks.
//! - One shared host certificate for the pool: the CSR from `lvs-cert request` (CN = the
//!   VIP's name, SANs = the VIP's name and every node), signed by the lab CA of `gsi.rs`
//!   (standing for an IGTF CA). It serves XRootD's TLS on every node and the agent's
//!   `[[redirect]]` listener on the VIP.
//! - scitokens-cpp fetches the issuer's keys with libcurl and the system CA bundle (no
//!   setting for another one), so each xrootd runs in its own mount namespace where the lab
//!   CA is bind-mounted over /etc/ssl/certs/ca-certificates.crt. The host's file is never
//!   touched.
//! - The director config is `lvs-node director-config --pool` as printed, loaded into the
//!   guest's keepalived; the agents manage their own data plane (VIP on lo, ARP).
//! - XrdMacaroons is stacked on the scitokens plugin, with one secret for the pool (the
//!   site has its own); each agent fingerprints its node's secret (`[report]
//!   macaroon_secret`).

use crate::dr::{real_ip, Host, IpvsLab, CLIENT_IP, DIRECTOR_IP, VIP};
use crate::gsi::{TestCa, TrustDir};
use crate::netns::{host, wait_for, Netns};
use crate::node::Workdir;
use crate::vm::director::tail;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The VIP's host name: the name clients use and the audience tokens carry.
pub const VIP_HOST: &str = "xrootd.lab";
/// The audience URL form (WLCG token profile: the endpoint's URL, no path).
pub const VIP_AUD: &str = "https://xrootd.lab";
pub const SITE_HOST: &str = "site.lab";
pub const SITE_AUD: &str = "https://site.lab";
pub const SITE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);
/// The token issuer (served from the site's namespace).
pub const ISSUER: &str = "https://issuer.lab";
/// The WLCG profile's "any" audience.
pub const ANY_AUD: &str = "https://wlcg.cern.ch/jwt/v1/any";
pub const ROOT_PORT: u16 = 1094;
pub const DAVS_PORT: u16 = 8443;
/// The agent's `[[redirect]]` listener on the VIP (uploads go to a node's own name).
pub const UPLOAD_PORT: u16 = 8444;
pub const AGENT_PORT: u16 = 8080;
/// What a token may do: everything under the issuer's base path (/data).
pub const SCOPE_RW: &str = "storage.read:/ storage.create:/ storage.modify:/";

pub fn node_name(i: usize) -> String {
    format!("rs{}.lab", i + 1)
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The hosts file of every namespace: the VIP's name, the nodes, the site and the issuer.
pub fn hosts(nodes: usize) -> String {
    let mut h =
        format!("127.0.0.1 localhost\n{VIP} {VIP_HOST}\n{SITE_IP} {SITE_HOST} issuer.lab\n");
    for i in 0..nodes {
        h.push_str(&format!("{} {}\n", real_ip(i), node_name(i)));
    }
    h
}

/// Random content of `size` bytes at `path`; returns its sha256.
pub fn random_file(path: &Path, size: usize) -> String {
    sh(&format!(
        "head -c {size} /dev/urandom > {p} && chmod 644 {p}",
        p = path.display()
    ));
    crate::gridftp::sha256(path)
}

/// The lab CA, its Globus-style hashed trust directory (X509_CERT_DIR for xrdcp, gfal and
/// davix; `xrd.tlsca certdir` for XRootD), the pool's shared certificate and the site's.
pub struct Pki {
    pub ca: TestCa,
    pub trust: TrustDir,
    pub pool_cert: PathBuf,
    pub pool_key: PathBuf,
    pub site_cert: PathBuf,
    pub site_key: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path, nodes: usize) -> Pki {
        let ca = TestCa::new(&dir.join("ca"));
        let trust = TrustDir::new(&dir.join("certificates"));
        trust.add(&ca.cert);
        let req = dir.join("req");
        std::fs::create_dir_all(&req).unwrap();
        let alts: String = (0..nodes)
            .map(|i| format!(" --alt {}", node_name(i)))
            .collect();
        sh(&format!(
            "{} request --vip {VIP_HOST}{alts} --out {}",
            crate::bins::lvs_cert().display(),
            req.display()
        ));
        let csr = std::fs::read_dir(&req)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "csr"))
            .expect("lvs-cert request wrote a CSR");
        let pool_key = csr.with_extension("key");
        let pool_cert = dir.join("hostcert.pem");
        ca.sign(&csr, &pool_cert);
        let (site_key, site_csr, site_cert) = (
            dir.join("site.key"),
            dir.join("site.csr"),
            dir.join("site.pem"),
        );
        sh(&format!(
            "openssl req -new -newkey rsa:2048 -nodes -keyout {} -out {} -subj /CN={SITE_HOST} \
             -addext subjectAltName=DNS:{SITE_HOST},DNS:issuer.lab 2>&1 && chmod 600 {}",
            site_key.display(),
            site_csr.display(),
            site_key.display()
        ));
        ca.sign(&site_csr, &site_cert);
        Pki {
            ca,
            trust,
            pool_cert,
            pool_key,
            site_cert,
            site_key,
        }
    }
}

/// base64url without padding (JWK coordinates).
fn b64url(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
        }
    }
    out
}

/// An ES256 signing key; returns the JWK of its public half.
fn es256_key(key: &Path, public: &Path, kid: &str) -> serde_json::Value {
    sh(&format!(
        "openssl ecparam -name prime256v1 -genkey -noout -out {k} && chmod 600 {k} && \
         openssl ec -in {k} -pubout -out {p} 2>/dev/null",
        k = key.display(),
        p = public.display()
    ));
    let der = Command::new("openssl")
        .args(["ec", "-pubin", "-outform", "DER", "-in"])
        .arg(public)
        .output()
        .unwrap()
        .stdout;
    // SubjectPublicKeyInfo for P-256 ends with the uncompressed point 04 || X || Y.
    let pt = &der[der.len() - 65..];
    assert_eq!(pt[0], 4, "not an uncompressed P-256 point");
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64url(&pt[1..33]), "y": b64url(&pt[33..]),
    })
}

/// The token issuer: an ES256 key, its JWKS and OpenID configuration served over HTTPS by
/// apache2 (`webdav.rs`) at `ISSUER`, and tokens minted with scitokens-cpp's
/// `scitokens-create` (WLCG profile, 10 minutes of life).
pub struct Issuer {
    key: PathBuf,
    public: PathBuf,
    /// A key the issuer never published, for forged tokens.
    rogue_key: PathBuf,
    rogue_public: PathBuf,
    _server: crate::webdav::Dav,
}

pub const KID: &str = "lab-key-1";

impl Issuer {
    pub fn start(site: &Host, dir: &Path, cert: &Path, key: &Path) -> Issuer {
        let www = dir.join("data");
        std::fs::create_dir_all(www.join(".well-known")).unwrap();
        let (k, p) = (dir.join("signing.key"), dir.join("signing.pub"));
        let jwk = es256_key(&k, &p, KID);
        let (rk, rp) = (dir.join("rogue.key"), dir.join("rogue.pub"));
        es256_key(&rk, &rp, KID);
        std::fs::write(
            www.join("jwks.json"),
            serde_json::json!({ "keys": [jwk] }).to_string(),
        )
        .unwrap();
        std::fs::write(
            www.join(".well-known/openid-configuration"),
            serde_json::json!({ "issuer": ISSUER, "jwks_uri": format!("{ISSUER}/jwks.json") })
                .to_string(),
        )
        .unwrap();
        let server = crate::webdav::start(site, dir, 443, Some((cert, key)));
        Issuer {
            key: k,
            public: p,
            rogue_key: rk,
            rogue_public: rp,
            _server: server,
        }
    }

    fn mint(&self, key: &Path, public: &Path, aud: &str, scope: &str) -> String {
        sh(&format!(
            "scitokens-create --cred {} --key {} --keyid {KID} --issuer {ISSUER} --profile wlcg \
             --claim aud={aud} --claim 'scope={scope}' --claim sub=lab-user",
            public.display(),
            key.display()
        ))
        .trim()
        .to_string()
    }

    /// A token for audience `aud` with `scope`.
    pub fn token(&self, aud: &str, scope: &str) -> String {
        self.mint(&self.key, &self.public, aud, scope)
    }

    /// A token that names this issuer and its key id but is signed by another key.
    pub fn forged_token(&self, aud: &str, scope: &str) -> String {
        self.mint(&self.rogue_key, &self.rogue_public, aud, scope)
    }
}

/// One xrootd: `root://` on 1094 and HTTPS/WebDAV with third-party copy on 8443, token-only.
pub struct Xrootd {
    pub pid: u32,
    pub dir: PathBuf,
}

impl Xrootd {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/xrootd.log")).unwrap_or_default()
    }
}

/// The xrootd configuration that docs/xrootd-webdav.md shows (paths filled in).
pub fn xrootd_cfg(dir: &Path, localroot: &Path, certdir: &Path) -> String {
    let d = dir.display();
    format!(
        "all.export /data\n\
         oss.localroot {root}\n\
         xrd.port {ROOT_PORT}\n\
         xrd.protocol XrdHttp:{DAVS_PORT} libXrdHttp.so\n\
         xrd.tls {d}/hostcert.pem {d}/hostkey.pem\n\
         xrd.tlsca certdir {certdir}\n\
         xrootd.tls capable all\n\
         xrootd.seclib libXrdSec.so\n\
         sec.protocol ztn\n\
         sec.protbind * only ztn\n\
         ofs.authorize 1\n\
         ofs.authlib libXrdAccSciTokens.so config={d}/scitokens.cfg\n\
         ofs.authlib ++ libXrdMacaroons.so\n\
         all.sitename LAB\n\
         macaroons.secretkey {d}/macaroon-secret\n\
         http.header2cgi Authorization authz\n\
         http.exthandler xrdtpc libXrdHttpTPC.so\n\
         http.exthandler xrdmacaroons libXrdMacaroons.so\n\
         all.adminpath {d}/adm\n\
         all.pidpath {d}/adm\n",
        root = localroot.display(),
        certdir = certdir.display(),
    )
}

/// scitokens.cfg: tokens of `ISSUER` for `audiences`, mapped to the xrootd user.
pub fn scitokens_cfg(audiences: &str) -> String {
    format!(
        "[Global]\naudience = {audiences}\n\n\
         [Issuer lab]\nissuer = {ISSUER}\nbase_path = /data\ndefault_user = xrootd\n"
    )
}

/// Starts xrootd in `h` as user xrootd under its own host name (`unshare -u`), with its
/// config in `dir` and the export /data under `localroot`. `ca_pem` replaces the system CA
/// bundle inside its private mount namespace (see the module comment).
#[allow(clippy::too_many_arguments)]
pub fn start_xrootd(
    h: &Host,
    hostname: &str,
    dir: &Path,
    localroot: &Path,
    (cert, key): (&Path, &Path),
    trust: &TrustDir,
    ca_pem: &Path,
    audiences: &str,
    macaroon_secret: &str,
) -> Xrootd {
    for d in ["adm", "log", "cache"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::create_dir_all(localroot.join("data")).unwrap();
    std::fs::copy(cert, dir.join("hostcert.pem")).unwrap();
    std::fs::copy(key, dir.join("hostkey.pem")).unwrap();
    std::fs::set_permissions(
        dir.join("hostkey.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.join("xrootd.cfg"), xrootd_cfg(dir, localroot, &trust.0)).unwrap();
    std::fs::write(dir.join("scitokens.cfg"), scitokens_cfg(audiences)).unwrap();
    write_secret(&dir.join("macaroon-secret"), macaroon_secret);
    sh(&format!(
        "chown -R xrootd:xrootd {} {}",
        dir.display(),
        localroot.display()
    ));
    launch_xrootd(h, hostname, dir, ca_pem)
}

/// A macaroon secret file as XrdMacaroons wants it: base64 text, 0600, owned by xrootd.
pub fn write_secret(path: &Path, secret: &str) {
    std::fs::write(path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    sh(&format!("chown xrootd:xrootd {}", path.display()));
}

/// A new random macaroon secret (64 bytes, base64).
pub fn new_secret() -> String {
    sh("openssl rand -base64 64 | tr -d '\\n'")
}

/// Starts xrootd with the config already in `dir` and waits until it listens on both ports.
pub fn launch_xrootd(h: &Host, hostname: &str, dir: &Path, ca_pem: &Path) -> Xrootd {
    let pid = h.ns.spawn_logged(
        &format!(
            "unshare -u -m --propagation private sh -c 'hostname {hostname} && \
             mount --bind {ca} /etc/ssl/certs/ca-certificates.crt && \
             exec env XDG_CACHE_HOME={d}/cache xrootd -c {d}/xrootd.cfg -R xrootd -l {d}/log/xrootd.log'",
            ca = ca_pem.display(),
            d = dir.display(),
        ),
        &dir.join("stdout.log"),
    );
    let up = wait_for(Duration::from_secs(20), || {
        h.ns.run(&format!(
            "ss -Hltn 'sport = :{ROOT_PORT}' | grep -q LISTEN && ss -Hltn 'sport = :{DAVS_PORT}' | grep -q LISTEN"
        ))
        .status
        .success()
        .then_some(())
    });
    let x = Xrootd {
        pid,
        dir: dir.to_path_buf(),
    };
    assert!(
        up.is_some(),
        "xrootd did not listen on {ROOT_PORT} and {DAVS_PORT} in {}:\n{}\n{}",
        h.ns.name,
        std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default(),
        tail(&x.log(), 30)
    );
    x
}

/// Joins the site's namespace to the lab bridge (the `dr.rs` host pattern).
fn add_site(lab: &IpvsLab) -> Host {
    let ns = Netns::new(&format!("{}site", lab.prefix));
    ns.disable_ipv6();
    let mac = "02:00:00:00:00:21".to_string();
    let out = host(&format!(
        "ip link add name eth0 netns {ns} address {mac} type veth peer name psite netns {br}",
        ns = ns.name,
        br = lab.bridge.name
    ));
    assert!(
        out.status.success(),
        "veth: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.bridge.ok("ip link set psite master br0 up");
    ns.ok(&format!(
        "ip addr add {SITE_IP}/24 dev eth0 && ip link set eth0 up"
    ));
    Host {
        ns,
        ip: SITE_IP,
        ip6: String::new(),
        mac,
    }
}

/// The node's `lvs-node` config: the VIP with the three ports, an xrootd and an https
/// check, `[[redirect]]` on VIP:UPLOAD_PORT to the node's own name.
pub fn node_toml(i: usize, dir: &Path, pki: &Pki) -> String {
    let ip = real_ip(i);
    let allow: Vec<String> = [CLIENT_IP, DIRECTOR_IP, real_ip(0), real_ip(1)]
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    format!(
        "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
         [[vip]]\naddress = \"{VIP}\"\nports = [{ROOT_PORT}, {DAVS_PORT}, {UPLOAD_PORT}]\nhostname = \"{VIP_HOST}\"\n\
         [daemon]\nmanage_dataplane = true\ncontrol_socket = \"{d}/control.sock\"\n\
         [[check]]\nname = \"xrootd\"\nkind = \"xrootd\"\ntarget = \"{ip}:{ROOT_PORT}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n\
         [[check]]\nname = \"webdav\"\nkind = \"webdav\"\ntarget = \"https://{ip}:{DAVS_PORT}/\"\nsni = \"{VIP_HOST}\"\n\
         ca_file = \"{ca}\"\nexpect_status = 403\ninterval = \"1s\"\ntimeout = \"900ms\"\n\
         [report]\nhttp = \"{ip}:{AGENT_PORT}\"\nallow = [{allow}]\nmacaroon_secret = \"{secret}\"\n\
         [[redirect]]\nlisten = \"{VIP}:{UPLOAD_PORT}\"\ntls_cert = \"{c}\"\ntls_key = \"{k}\"\n\
         target = \"https://{n}:{DAVS_PORT}\"\n",
        d = dir.display(),
        ca = pki.ca.cert.display(),
        allow = allow.join(", "),
        c = pki.pool_cert.display(),
        k = pki.pool_key.display(),
        n = node_name(i),
        secret = dir
            .parent()
            .unwrap()
            .join(format!("xrootd{i}/macaroon-secret"))
            .display(),
    )
}

/// The whole lab. Fields drop in order: the namespaces (and every process in them) go
/// before the scratch directory.
pub struct WlcgLab {
    pub lab: IpvsLab,
    pub site: Host,
    pub issuer: Issuer,
    pub nodes: Vec<Xrootd>,
    pub site_xrootd: Xrootd,
    pub pki: Pki,
    /// The keepalived config loaded into the guest, as `director-config --pool` printed it.
    pub director_conf: String,
    /// The pool's shared storage (`oss.localroot`); /data is its `data/`.
    pub storage: PathBuf,
    pub site_storage: PathBuf,
    pub work: Workdir,
}

impl WlcgLab {
    /// Two nodes behind the real director, the site, the issuer; returns once IPVS has
    /// both nodes with a weight on all three ports.
    pub fn build(tag: &str) -> WlcgLab {
        let lab = IpvsLab::build(tag, 2)
            .unwrap_or_else(|e| panic!("the real director guest did not come up: {e:#}"));
        let work = Workdir::new(&format!("{}-wlcg", lab.prefix));
        let w = work.path().to_path_buf();
        let site = add_site(&lab);
        let hosts = hosts(lab.reals.len());
        for h in lab.reals.iter().chain([&lab.client, &site]) {
            h.ns.write_etc("hosts", &hosts);
        }
        let pki = Pki::new(&w.join("pki"), lab.reals.len());
        let issuer = Issuer::start(&site, &w.join("issuer"), &pki.site_cert, &pki.site_key);
        let storage = w.join("pool-storage");
        let site_storage = w.join("site-storage");
        // One macaroon secret for the pool: a macaroon from one node verifies on all.
        let pool_secret = new_secret();
        let mut nodes = Vec::new();
        for (i, rs) in lab.reals.iter().enumerate() {
            nodes.push(start_xrootd(
                rs,
                &node_name(i),
                &w.join(format!("xrootd{i}")),
                &storage,
                (&pki.pool_cert, &pki.pool_key),
                &pki.trust,
                &pki.ca.cert,
                &format!("{VIP_AUD}, {VIP_HOST}"),
                &pool_secret,
            ));
        }
        let site_xrootd = start_xrootd(
            &site,
            SITE_HOST,
            &w.join("xrootd-site"),
            &site_storage,
            (&pki.site_cert, &pki.site_key),
            &pki.trust,
            &pki.ca.cert,
            &format!("{SITE_AUD}, {SITE_HOST}"),
            &new_secret(),
        );
        for (i, rs) in lab.reals.iter().enumerate() {
            let d = w.join(format!("node{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let cfg = d.join("node.toml");
            std::fs::write(&cfg, node_toml(i, &d, &pki)).unwrap();
            start_agent(rs, &cfg, &d.join("agent.log"));
        }
        let mut cmd = format!("{} director-config", crate::bins::lvs_node().display());
        for rs in &lab.reals {
            cmd.push_str(&format!(" --pool http://{}:{AGENT_PORT}", rs.ip));
        }
        // An admin on the director's network: the client namespace reaches the nodes' [report].
        let director_conf = lab.client.ok(&cmd);
        lab.director
            .load_keepalived(&director_conf)
            .unwrap_or_else(|e| {
                panic!(
                    "keepalived did not load the --pool config as printed: {e:#}\n{director_conf}"
                )
            });
        let wl = WlcgLab {
            lab,
            site,
            issuer,
            nodes,
            site_xrootd,
            pki,
            director_conf,
            storage,
            site_storage,
            work,
        };
        wl.wait_in_rotation();
        wl
    }

    /// Waits (60 s) until IPVS has every node with a weight on every port and every node's
    /// `/health` says up.
    fn wait_in_rotation(&self) {
        let want: Vec<String> = self
            .lab
            .reals
            .iter()
            .flat_map(|r| [ROOT_PORT, DAVS_PORT, UPLOAD_PORT].map(|p| format!("{}:{p}", r.ip)))
            .collect();
        let ok = wait_for(Duration::from_secs(60), || {
            let reals: Vec<_> = self
                .lab
                .director
                .table()
                .into_iter()
                .flat_map(|s| s.reals)
                .filter(|r| r.weight > 0)
                .map(|r| r.addr)
                .collect();
            // keepalived starts every real at its weight before the first check: the
            // agents' own checks (xrootd, webdav) must pass too.
            let healthy = (0..self.lab.reals.len()).all(|i| {
                self.lab
                    .client
                    .ns
                    .run(&format!(
                        "curl -s -o /dev/null -w '%{{http_code}}' -m 2 http://{}:{AGENT_PORT}/health",
                        real_ip(i)
                    ))
                    .stdout
                    == b"200"
            });
            (healthy && want.iter().all(|a| reals.contains(a))).then_some(())
        });
        assert!(
            ok.is_some(),
            "IPVS should have both nodes with a weight on {ROOT_PORT}, {DAVS_PORT}, {UPLOAD_PORT}:\n{}\nkeepalived:\n{}\nagent log:\n{}",
            self.lab.director.ipvsadm_ln(),
            tail(&self.lab.director.keepalived_log(), 20),
            tail(
                &std::fs::read_to_string(self.work.path().join("node0/agent.log"))
                    .unwrap_or_default(),
                20
            )
        );
    }

    /// Kills node `i`'s xrootd (by its PID) and starts it again with `scitokens_cfg` as
    /// its scitokens.cfg, everything else as before.
    pub fn restart_node_xrootd(&mut self, i: usize, scitokens_cfg: &str) {
        let rs = &self.lab.reals[i];
        rs.ns.kill(self.nodes[i].pid);
        let gone = wait_for(Duration::from_secs(10), || {
            (!rs.ns
                .run(&format!("ss -Hltn 'sport = :{ROOT_PORT}' | grep -q LISTEN"))
                .status
                .success())
            .then_some(())
        });
        assert!(gone.is_some(), "xrootd on {} still listens", node_name(i));
        let dir = self.work.path().join(format!("xrootd{i}"));
        std::fs::write(dir.join("scitokens.cfg"), scitokens_cfg).unwrap();
        self.nodes[i] = launch_xrootd(rs, &node_name(i), &dir, &self.pki.ca.cert);
    }

    /// Kills node `i`'s xrootd and starts it again with `secret` as its macaroon secret.
    pub fn restart_node_with_secret(&mut self, i: usize, secret: &str) {
        let st = std::fs::read_to_string(self.node_scitokens_cfg(i)).unwrap();
        write_secret(&self.node_secret(i), secret);
        self.restart_node_xrootd(i, &st);
    }

    /// Node `i`'s macaroon secret file (`macaroons.secretkey`, `[report] macaroon_secret`).
    pub fn node_secret(&self, i: usize) -> PathBuf {
        self.work.path().join(format!("xrootd{i}/macaroon-secret"))
    }

    /// doctor's finding `id` on node `i`, run in the node's namespace with the node's agent
    /// config and its xrootd config (`--xrootd-conf`).
    pub fn doctor_finding(&self, i: usize, id: &str) -> serde_json::Value {
        let dir = self.work.path();
        let out = self.lab.reals[i].ns.run(&format!(
            "{} -c {} doctor --json --xrootd-conf {}",
            crate::bins::lvs_node().display(),
            dir.join(format!("node{i}/node.toml")).display(),
            dir.join(format!("xrootd{i}/xrootd.cfg")).display()
        ));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json is not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let mut f: Vec<serde_json::Value> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == id)
            .cloned()
            .collect();
        assert_eq!(f.len(), 1, "one {id} finding: {v:#}");
        f.remove(0)
    }

    /// The scitokens.cfg node `i`'s xrootd reads.
    pub fn node_scitokens_cfg(&self, i: usize) -> PathBuf {
        self.work.path().join(format!("xrootd{i}/scitokens.cfg"))
    }

    /// Where the pool stores /data/`name`.
    pub fn pool_file(&self, name: &str) -> PathBuf {
        self.storage.join("data").join(name)
    }

    pub fn site_file(&self, name: &str) -> PathBuf {
        self.site_storage.join("data").join(name)
    }

    /// A file of `size` random bytes stored at /data/`name` on the pool's storage (as if
    /// written earlier), owned by xrootd; returns its sha256.
    pub fn seed_pool(&self, name: &str, size: usize) -> String {
        seed(&self.pool_file(name), size)
    }

    pub fn seed_site(&self, name: &str, size: usize) -> String {
        seed(&self.site_file(name), size)
    }

    /// A scratch path for the client.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Runs `cmd` in the client namespace with the lab's trust directory as X509_CERT_DIR
    /// (xrdcp, gfal-copy, davix) and a 120 s bound.
    pub fn client(&self, env: &str, cmd: &str) -> Output {
        self.lab.client.ns.run(&format!(
            "env X509_CERT_DIR={} {env} timeout 120 {cmd}",
            self.pki.trust.0.display()
        ))
    }

    /// Like [`WlcgLab::client`], panicking with the servers' log tails unless it succeeds;
    /// returns stdout and stderr together.
    pub fn client_ok(&self, env: &str, cmd: &str) -> String {
        let o = self.client(env, cmd);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success(),
            "`{cmd}` failed ({}):\n{text}\n{}",
            o.status,
            self.logs()
        );
        text
    }

    /// The tails of every xrootd log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (i, x) in self.nodes.iter().enumerate() {
            s.push_str(&format!(
                "--- xrootd on {}:\n{}\n",
                node_name(i),
                tail(&x.log(), 15)
            ));
        }
        s.push_str(&format!(
            "--- xrootd on {SITE_HOST}:\n{}\n",
            tail(&self.site_xrootd.log(), 15)
        ));
        s
    }

    /// IPVS's connection counter of node `i` on `port`.
    pub fn ipvs_conns(&self, i: usize, port: u16) -> u64 {
        let addr = format!("{}:{port}", self.lab.reals[i].ip);
        self.lab
            .director
            .stats()
            .into_iter()
            .find(|s| s.addr == addr)
            .map(|s| s.conns)
            .unwrap_or(0)
    }

    /// Bytes IPVS forwarded from clients to `port` (all nodes).
    pub fn ipvs_in_bytes(&self, port: u16) -> u64 {
        self.lab
            .director
            .stats()
            .into_iter()
            .filter(|s| s.addr.ends_with(&format!(":{port}")))
            .map(|s| s.in_bytes)
            .sum()
    }
}

fn seed(path: &Path, size: usize) -> String {
    let sum = random_file(path, size);
    sh(&format!("chown xrootd:xrootd {}", path.display()));
    sum
}

/// Starts `lvs-node run` in `h` and waits until its HTTP endpoint answers.
fn start_agent(h: &Host, config: &Path, log: &Path) -> u32 {
    let pid = h.ns.spawn_logged(
        &format!(
            "{} -c {} -v run",
            crate::bins::lvs_node().display(),
            config.display()
        ),
        log,
    );
    let up = wait_for(Duration::from_secs(15), || {
        h.ns.run(&format!(
            "curl -s -o /dev/null -m 1 http://{}:{AGENT_PORT}/health",
            h.ip
        ))
        .status
        .success()
        .then_some(())
    });
    assert!(
        up.is_some(),
        "agent did not answer on {}:{AGENT_PORT}: {}",
        h.ip,
        std::fs::read_to_string(log).unwrap_or_default()
    );
    pid
}

#[cfg(test)]
mod tests {
    #[test]
    fn b64url_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
        ] {
            assert_eq!(super::b64url(i.as_bytes()), o);
        }
        assert_eq!(super::b64url(&[0xfb, 0xff]), "-_8");
    }
}
