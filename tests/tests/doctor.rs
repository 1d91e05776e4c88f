//! `lvs-node doctor` in the lab: a healthy real server has no warning or error, then each
//! thing doctor checks is broken on purpose, one at a time, and the matching finding must
//! turn warn/error with a fix, with the right exit code (1 on errors, 0 on warnings only).
//!
//! The node: VIP on lo with sysctl ARP suppression (`lvs-node up`), GridFTP config files with
//! data_interface = real IP and a port range, an /etc/hosts (per namespace) mapping the
//! hostname (set with `unshare -u`) to the real IP, a certificate naming the VIP hostname,
//! an nftables input chain with policy drop that opens 2811 and the range, and
//! `lvs-node run` with both report endpoints.

use lab::dr::{Host, DIRECTOR_IP, VIP};
use lab::node::{lvs_node_ok, write_config, Workdir};
use lab::{bins, wait_for, DrLab};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const HOSTNAME: &str = "rs1.lab";
const VIP_NAME: &str = "gridftp.lab";
const GOOD_CONF: &str = "# test\nport 2811\ndata_interface 192.0.2.11\nport_range 50000,50100\n";
const FIREWALL_OPEN: &str = "2811, 8080, 8081, 50000-50100";

struct Node {
    work: Workdir,
    cfg: PathBuf,
    agent: Option<u32>,
    // Dropped last: kills the agent by PID and removes the namespaces.
    lab: DrLab,
}

impl Node {
    fn rs(&self) -> &Host {
        &self.lab.reals[0]
    }

    fn file(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A healthy real server with the agent running.
    fn healthy(tag: &str) -> Node {
        let lab = DrLab::one_real(tag);
        let work = Workdir::new(&format!("{}-doctor", lab.prefix));
        let rs = &lab.reals[0];
        let body = format!(
            "real_ip = \"{rip}\"\n\
             [[vip]]\naddress = \"{VIP}\"\nports = [2811]\nhostname = \"{VIP_NAME}\"\n\
             [daemon]\nmanage_dataplane = false\ncontrol_socket = \"{dir}/control.sock\"\nrecheck_interval = \"1s\"\n\
             [report]\nhttp = \"{rip}:8080\"\nagent_check = \"{rip}:8081\"\nallow = [\"{DIRECTOR_IP}\", \"{rip}\"]\n",
            rip = rs.ip,
            dir = work.path().display()
        );
        let cfg = write_config(&work, rs, "node", &body);
        lvs_node_ok(rs, &cfg, "up");
        // Deterministic reverse-path filtering: off for all, loose on the NIC.
        rs.ok("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=2");
        let mut node = Node {
            work,
            cfg,
            agent: None,
            lab,
        };
        node.write_gridftp(GOOD_CONF, "GLOBUS_TCP_PORT_RANGE=50000,50100\n");
        node.make_cert(&format!("DNS:{VIP_NAME},DNS:{HOSTNAME}"));
        node.hosts(&format!(
            "127.0.0.1 localhost\n{} {HOSTNAME}\n{VIP} {VIP_NAME}\n",
            node.rs().ip
        ));
        node.firewall(FIREWALL_OPEN);
        node.start_agent();
        node
    }

    fn write_gridftp(&self, conf: &str, env: &str) {
        std::fs::write(self.file("gridftp.conf"), conf).unwrap();
        let env = format!(
            "# service environment\nX509_USER_CERT={}\n{env}",
            self.file("hostcert.pem").display()
        );
        std::fs::write(self.file("sysconfig"), env).unwrap();
    }

    fn make_cert(&self, san: &str) {
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "30", "-subj", &format!("/CN={HOSTNAME}")])
            .args(["-addext", &format!("subjectAltName={san}")])
            .arg("-keyout")
            .arg(self.file("hostkey.pem"))
            .arg("-out")
            .arg(self.file("hostcert.pem"))
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn hosts(&self, text: &str) {
        self.rs().ns.write_etc("hosts", text);
    }

    /// An input chain that drops by default and accepts `ports`.
    fn firewall(&self, ports: &str) {
        let script = format!(
            "table inet filter\ndelete table inet filter\n\
             table inet filter {{\n chain input {{\n  type filter hook input priority filter; policy drop;\n\
             iif \"lo\" accept\n  ct state established,related accept\n  tcp dport {{ {ports} }} accept\n }}\n}}\n"
        );
        let p = self.file("fw.nft");
        std::fs::write(&p, script).unwrap();
        self.rs().ok(&format!("nft -f {}", p.display()));
    }

    /// Starts `lvs-node run` and waits until /health says 200 (or, when this host may not
    /// connect, until it listens).
    fn start_agent(&mut self) {
        let rs = &self.lab.reals[0];
        let self_allowed = std::fs::read_to_string(&self.cfg)
            .unwrap()
            .contains(&format!("\"{}\"]", rs.ip));
        let log = self.file("agent.log");
        let pid = rs.ns.spawn_logged(
            &format!(
                "{} -c {} run",
                bins::lvs_node().display(),
                self.cfg.display()
            ),
            &log,
        );
        let probe = if self_allowed {
            format!("curl -sf -o /dev/null -m 1 http://{}:8080/health", rs.ip)
        } else {
            "ss -Hltn 'sport = :8081' | grep -q LISTEN".to_string()
        };
        let up = wait_for(Duration::from_secs(10), || {
            rs.ns.run(&probe).status.success().then_some(())
        });
        assert!(
            up.is_some(),
            "agent not healthy: {}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            String::from_utf8_lossy(&rs.ns.run("ss -ltnp").stdout)
        );
        self.agent = Some(pid);
    }

    fn stop_agent(&mut self) {
        if let Some(pid) = self.agent.take() {
            self.rs().ns.kill(pid);
        }
    }

    /// Runs doctor as the node would (own hostname, the namespace's /etc/hosts).
    fn doctor_raw(&self, extra: &str) -> (i32, String, String) {
        let cmd = format!(
            "{} -c {} doctor --gridftp-conf {} --sysconfig {} {extra}",
            bins::lvs_node().display(),
            self.cfg.display(),
            self.file("gridftp.conf").display(),
            self.file("sysconfig").display(),
        );
        let out = self.rs().ns.run(&format!(
            "unshare -u sh -c 'hostname {HOSTNAME} && exec {cmd}'"
        ));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn doctor(&self) -> (i32, Value) {
        let (code, out, err) = self.doctor_raw("--json");
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {out}\n{err}"));
        (code, v)
    }
}

fn finding<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}: {v:#}"))
}

/// Asserts the finding's severity, that a non-ok one has a fix, and returns it.
fn expect<'a>(v: &'a Value, id: &str, severity: &str) -> &'a Value {
    let f = finding(v, id);
    assert_eq!(f["severity"], severity, "{id}: {f:#}\nall: {v:#}");
    if severity != "ok" {
        let fix = f["fix"].as_str().unwrap_or("");
        assert!(!fix.is_empty(), "{id} has no fix: {f:#}");
    }
    f
}

fn not_ok(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "ok")
        .map(|f| format!("{} {}: {}", f["severity"], f["id"], f["summary"]))
        .collect()
}

#[test]
fn healthy_node_all_ok() {
    let n = Node::healthy("dochl");
    let (code, v) = n.doctor();
    assert!(
        not_ok(&v).is_empty(),
        "healthy node has findings: {:#?}\n{v:#}",
        not_ok(&v)
    );
    assert_eq!(code, 0, "{v:#}");
    for id in [
        "dataplane",
        "rp_filter",
        "arp_announce",
        "arp_ignore",
        "gridftp.control_interface",
        "gridftp.data_interface",
        "gridftp.port_range",
        "gridftp.firewall",
        "hostname.loopback",
        "cert.names",
        "cert.expiry",
        "report.http",
        "report.agent_check",
    ] {
        expect(&v, id, "ok");
    }
    assert_eq!(v["summary"]["error"], 0);
    assert_eq!(v["summary"]["exit_code"], 0);
    let fw = finding(&v, "gridftp.firewall");
    assert!(
        fw["summary"].as_str().unwrap().contains("50000-50100"),
        "{fw:#}"
    );
    let agent = finding(&v, "report.agent_check");
    assert!(
        agent["summary"].as_str().unwrap().contains("up ready"),
        "{agent:#}"
    );

    // Human output: one line per finding, then a summary.
    let (code, text, err) = n.doctor_raw("");
    eprintln!("{text}");
    assert_eq!(code, 0, "{text}\n{err}");
    assert!(text.contains("[ ok ] dataplane: "), "{text}");
    assert!(
        text.contains("[ ok ] report.http: GET http://192.0.2.11:8080/health: 200"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("0 warning(s), 0 error(s)"),
        "{text}"
    );
}

#[test]
fn vip_removed_is_an_error() {
    let n = Node::healthy("docvip");
    n.rs().ok(&format!("ip addr del {VIP}/32 dev lo"));
    let (code, v) = n.doctor();
    let f = expect(&v, "dataplane", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("VIP missing"),
        "{f:#}"
    );
    assert!(
        f["detail"].as_str().unwrap().contains("192.0.2.100"),
        "{f:#}"
    );
    assert!(f["fix"].as_str().unwrap().contains("lvs-node up"), "{f:#}");
    assert_eq!(code, 1);
    // Putting it back clears it.
    lvs_node_ok(n.rs(), &n.cfg, "up");
    expect(&n.doctor().1, "dataplane", "ok");
}

#[test]
fn strict_rp_filter_is_a_warning() {
    let n = Node::healthy("docrpf");
    // all=0, eth0=1: the kernel uses the maximum, strict.
    n.rs().ok("sysctl -qw net.ipv4.conf.eth0.rp_filter=1");
    let (code, v) = n.doctor();
    eprintln!("{}", n.doctor_raw("").1);
    let f = expect(&v, "rp_filter", "warn");
    assert!(
        f["detail"].as_str().unwrap().contains("effective=1"),
        "{f:#}"
    );
    assert!(f["fix"].as_str().unwrap().contains("rp_filter=2"), "{f:#}");
    assert_eq!(not_ok(&v).len(), 1, "{:#?}", not_ok(&v));
    assert_eq!(code, 0, "warnings alone exit 0");
}

#[test]
fn arp_announce_zero_with_sysctl_method_is_an_error() {
    let n = Node::healthy("docann");
    n.rs()
        .ok("sysctl -qw net.ipv4.conf.all.arp_announce=0 net.ipv4.conf.eth0.arp_announce=0");
    let (code, v) = n.doctor();
    let f = expect(&v, "arp_announce", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("announce the VIP"),
        "{f:#}"
    );
    assert!(
        f["fix"].as_str().unwrap().contains("arp_announce=2"),
        "{f:#}"
    );
    expect(&v, "arp_ignore", "ok");
    expect(&v, "dataplane", "error");
    assert_eq!(code, 1);
}

#[test]
fn data_interface_vip_with_only_2811_balanced_is_an_error() {
    let n = Node::healthy("docdif");
    n.write_gridftp("data_interface 192.0.2.100\nport_range 50000,50100\n", "");
    let (code, v) = n.doctor();
    let f = expect(&v, "gridftp.data_interface", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("is the VIP"),
        "{f:#}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("data_interface 192.0.2.11"),
        "{f:#}"
    );
    assert_eq!(code, 1);

    // The virtual hostname as `hostname` sets the data interface too.
    n.write_gridftp(
        &format!("hostname {VIP_NAME}\nport_range 50000,50100\n"),
        "",
    );
    let (code, v) = n.doctor();
    let f = expect(&v, "gridftp.data_interface", "error");
    assert!(
        f["summary"].as_str().unwrap().starts_with("hostname"),
        "{f:#}"
    );
    assert_eq!(code, 1);

    // `hostname` = the node's own name fixes the data channel but makes the server listen
    // only on the real IP: connections to the VIP are refused.
    n.write_gridftp(
        &format!("hostname {HOSTNAME}\nport_range 50000,50100\n"),
        "",
    );
    let (code, v) = n.doctor();
    expect(&v, "gridftp.data_interface", "ok");
    let f = expect(&v, "gridftp.control_interface", "error");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("data_interface 192.0.2.11"),
        "{f:#}"
    );
    assert_eq!(code, 1);

    // Unset: the server advertises what the system host name resolves to (not the
    // control connection's address): the real IP here, so data goes straight to the node.
    n.write_gridftp("port_range 50000,50100\n", "");
    let (code, v) = n.doctor();
    let f = expect(&v, "gridftp.data_interface", "ok");
    assert!(f["summary"].as_str().unwrap().contains("not set"), "{f:#}");
    assert_eq!(code, 0, "{v:#}");

    // Unset, with the host name mapped to the VIP: passive replies advertise the VIP.
    n.hosts(&format!(
        "127.0.0.1 localhost\n{VIP} {HOSTNAME} {VIP_NAME}\n"
    ));
    let (code, v) = n.doctor();
    let f = expect(&v, "gridftp.data_interface", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("not set")
            && f["summary"].as_str().unwrap().contains("is the VIP"),
        "{f:#}"
    );
    assert_eq!(code, 1);
}

#[test]
fn missing_port_range_is_a_warning() {
    let n = Node::healthy("docpr");
    n.write_gridftp(
        "data_interface 192.0.2.11\n",
        "GLOBUS_TCP_SOURCE_RANGE=50000,50100\n",
    );
    let (code, v) = n.doctor();
    let f = expect(&v, "gridftp.port_range", "warn");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("port_range 50000,51000"),
        "{f:#}"
    );
    // The firewall drops by default, so the missing range is flagged there too.
    expect(&v, "gridftp.firewall", "warn");
    assert_eq!(code, 0, "warnings alone exit 0: {v:#}");

    // `$GLOBUS_TCP_PORT_RANGE` in the config file counts.
    n.write_gridftp(
        "data_interface 192.0.2.11\n$GLOBUS_TCP_PORT_RANGE 50000,50100\n",
        "",
    );
    let (code, v) = n.doctor();
    expect(&v, "gridftp.port_range", "ok");
    assert_eq!(code, 0);
}

#[test]
fn firewall_without_the_port_range_is_a_warning() {
    let n = Node::healthy("docfw");
    n.firewall("2811, 8080, 8081");
    let (code, v) = n.doctor();
    let f = expect(&v, "gridftp.firewall", "warn");
    assert!(f["fix"].as_str().unwrap().contains("50000-50100"), "{f:#}");
    assert_eq!(not_ok(&v).len(), 1, "{:#?}", not_ok(&v));
    assert_eq!(code, 0);
}

#[test]
fn hostname_on_loopback_is_an_error() {
    let n = Node::healthy("dochost");
    n.hosts(&format!(
        "127.0.0.1 localhost {HOSTNAME}\n{VIP} {VIP_NAME}\n"
    ));
    let (code, v) = n.doctor();
    let f = expect(&v, "hostname.loopback", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("127.0.0.1"),
        "{f:#}"
    );
    assert!(f["fix"].as_str().unwrap().contains("/etc/hosts"), "{f:#}");
    assert_eq!(code, 1);
}

#[test]
fn certificate_without_the_vip_name_is_an_error() {
    let n = Node::healthy("doccert");
    n.make_cert(&format!("DNS:{HOSTNAME}"));
    let (code, v) = n.doctor();
    let f = expect(&v, "cert.names", "error");
    assert!(f["summary"].as_str().unwrap().contains(VIP_NAME), "{f:#}");
    expect(&v, "cert.expiry", "ok");
    assert_eq!(code, 1);

    // A missing certificate is a warning.
    std::fs::remove_file(n.file("hostcert.pem")).unwrap();
    let (code, v) = n.doctor();
    expect(&v, "cert.names", "warn");
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn stopped_agent_is_an_error() {
    let mut n = Node::healthy("docagent");
    n.stop_agent();
    let (code, v) = n.doctor();
    for id in ["report.http", "report.agent_check"] {
        let f = expect(&v, id, "error");
        assert!(
            f["summary"]
                .as_str()
                .unwrap()
                .contains("connection refused"),
            "{f:#}"
        );
        assert!(f["fix"].as_str().unwrap().contains("lvs-node run"), "{f:#}");
        assert!(
            f["detail"].as_str().unwrap().contains("192.0.2.2"),
            "allow list: {f:#}"
        );
    }
    assert_eq!(code, 1);
}

#[test]
fn agent_refusing_this_host_is_still_ok() {
    // report.allow lists only the director: the agent closes doctor's connections, which
    // shows it listens and enforces the list.
    let mut n = Node::healthy("docallow");
    n.stop_agent();
    let text = std::fs::read_to_string(&n.cfg).unwrap();
    let text = text.replace(&format!(", \"{}\"]", n.rs().ip), "]");
    assert!(
        text.contains(&format!("allow = [\"{DIRECTOR_IP}\"]")),
        "{text}"
    );
    std::fs::write(&n.cfg, text).unwrap();
    n.start_agent();
    let (code, v) = n.doctor();
    for id in ["report.http", "report.agent_check"] {
        let f = expect(&v, id, "ok");
        assert!(
            f["detail"]
                .as_str()
                .unwrap()
                .contains("not in report.allow"),
            "{f:#}"
        );
    }
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn bad_config_exits_2() {
    let n = Node::healthy("docbad");
    std::fs::write(&n.cfg, "interface = \"eth0\"\n").unwrap();
    let (code, out, err) = n.doctor_raw("");
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("vip"), "{err}");
}
