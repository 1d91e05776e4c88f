//! Helpers shared by the `lvs-node run` lab tests: node configs, starting the agent, and
//! reading its endpoints the way a director would.
#![allow(dead_code)]

use lab::dr::{Host, DIRECTOR_IP, VIP};
use lab::{bins, wait_for, DrLab, Netns};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub const HTTP_PORT: u16 = 8080;
pub const AGENT_PORT: u16 = 8081;

/// A scratch directory removed on drop.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(prefix: &str) -> TestDir {
        let p = std::env::temp_dir().join(format!("{prefix}-daemon"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TestDir(p)
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// For tests whose agent does not manage the data plane: the VIP on lo and the ARP sysctls,
/// set by hand as `lvs-node up` would.
pub fn prepare_real_by_hand(h: &Host) {
    h.ok(&format!("ip addr add {VIP}/32 dev lo"));
    h.ok("sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2");
}

pub struct NodeOpts<'a> {
    pub manage_dataplane: bool,
    /// Extra lines inside [report].
    pub report_extra: &'a str,
    /// Extra tables after everything else.
    pub extra: &'a str,
    pub http_port: u16,
    /// `[daemon] recheck_interval`.
    pub recheck: &'a str,
}

impl Default for NodeOpts<'_> {
    fn default() -> Self {
        NodeOpts {
            manage_dataplane: false,
            report_extra: "",
            extra: "",
            http_port: HTTP_PORT,
            recheck: "1s",
        }
    }
}

pub fn node_toml(h: &Host, dir: &Path, o: &NodeOpts) -> String {
    format!(
        "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{dir}/state\"\n\
         [[vip]]\naddress = \"{VIP}\"\nports = [2811]\nhostname = \"gridftp.lab\"\n\
         [daemon]\nmanage_dataplane = {m}\ncontrol_socket = \"{dir}/control.sock\"\nrecheck_interval = \"{rc}\"\n\
         [[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 1\n\
         [report]\nhttp = \"{ip}:{hp}\"\nagent_check = \"{ip}:{AGENT_PORT}\"\n{re}\n{ex}\n",
        ip = h.ip,
        dir = dir.display(),
        m = o.manage_dataplane,
        hp = o.http_port,
        rc = o.recheck,
        re = o.report_extra,
        ex = o.extra,
    )
}

/// Writes `node.toml` for host `h` into `dir` (its own subdirectory) and returns its path.
pub fn write_config(h: &Host, dir: &Path, o: &NodeOpts) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("node.toml");
    std::fs::write(&p, node_toml(h, dir, o)).unwrap();
    p
}

/// Starts `lvs-node run` in `h` and waits until its HTTP endpoint answers.
pub fn start_agent(h: &Host, config: &Path, log: &Path, http_port: u16) -> u32 {
    let pid = h.ns.spawn_logged(
        &format!(
            "{} -c {} -v run",
            bins::lvs_node().display(),
            config.display()
        ),
        log,
    );
    let up = wait_for(Duration::from_secs(10), || {
        h.ns.run(&format!(
            "curl -s -o /dev/null -m 1 http://{}:{http_port}/health",
            h.ip
        ))
        .status
        .success()
        .then_some(())
    });
    assert!(
        up.is_some(),
        "agent did not answer on {}:{http_port}: {}",
        h.ip,
        std::fs::read_to_string(log).unwrap_or_default()
    );
    pid
}

/// GET /health from `from`: (status code, body).
pub fn health(from: &Netns, ip: impl std::fmt::Display, port: u16) -> (u16, String) {
    let out = from.run(&format!(
        "curl -s -m 2 -w '\\n%{{http_code}}' http://{ip}:{port}/health"
    ));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.trim().to_string())
}

/// The agent-check line as HAProxy would read it.
pub fn agent_line(from: &Netns, ip: impl std::fmt::Display) -> String {
    let out = from.run(&format!(
        "socat -t 2 - TCP:{ip}:{AGENT_PORT},connect-timeout=2 </dev/null"
    ));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `lvs-node -c config ARGS` inside `ns`.
pub fn lvs(ns: &Netns, config: &Path, args: &str) -> Output {
    ns.run(&format!(
        "{} -c {} {args}",
        bins::lvs_node().display(),
        config.display()
    ))
}

pub fn wait_health(
    from: &Netns,
    ip: impl std::fmt::Display + Copy,
    port: u16,
    code: u16,
    timeout: Duration,
) -> Option<(u16, String)> {
    wait_for(timeout, || {
        let r = health(from, ip, port);
        (r.0 == code).then_some(r)
    })
}

pub fn cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// A self-signed host certificate (CN and SAN `gridftp.lab`) valid for `days`, written to
/// `dir/hostcert.pem` with its key in `dir/hostkey.pem`.
pub fn self_signed_cert(dir: &TestDir, days: u32) -> PathBuf {
    let cert = dir.join("hostcert.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days"])
        .arg(days.to_string())
        .args([
            "-subj",
            "/CN=gridftp.lab",
            "-addext",
            "subjectAltName=DNS:gridftp.lab",
        ])
        .arg("-keyout")
        .arg(dir.join("hostkey.pem"))
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cert
}

/// `[pool] peers` and `[report] allow` of a lab pool, as the insides of TOML arrays: every
/// real server's report endpoint (`http://IP:HTTP_PORT`), and the director with every real
/// server.
pub fn pool_lists(reals: &[Host]) -> (String, String) {
    let peers: Vec<String> = reals
        .iter()
        .map(|r| format!("\"http://{}:{HTTP_PORT}\"", r.ip))
        .collect();
    let allow: Vec<String> = std::iter::once(DIRECTOR_IP.to_string())
        .chain(reals.iter().map(|r| r.ip.to_string()))
        .map(|a| format!("\"{a}\""))
        .collect();
    (peers.join(", "), allow.join(", "))
}

/// A node of a lab pool: every real server in `[pool] peers` and in `[report] allow` (with
/// the director), a `certificate` check on `cert`, and a command check `check` that fails
/// printing `output` while `dir/down` exists. `pool` is the `[pool]` timing lines.
pub fn pool_node(
    lab: &DrLab,
    rs: &Host,
    dir: &Path,
    cert: &Path,
    (check, output): (&str, &str),
    pool: &str,
) -> PathBuf {
    let (peers, allow) = pool_lists(&lab.reals);
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{VIP}\"\nports = [2811]\n\
             [daemon]\nmanage_dataplane = false\ncontrol_socket = \"{d}/control.sock\"\n\
             [report]\nhttp = \"{ip}:{HTTP_PORT}\"\nallow = [{allow}]\n\
             [[check]]\nname = \"{check}\"\nkind = \"command\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1\n\
             command = [\"/bin/sh\", \"-c\", \"test ! -e {d}/down || {{ echo '{output}'; exit 2; }}\"]\n\
             [[check]]\nname = \"hostcert\"\nkind = \"certificate\"\ncert = \"{c}\"\nmin_days = 7\nhostnames = []\n\
             [pool]\npeers = [{p}]\n{pool}\n",
            ip = rs.ip,
            d = dir.display(),
            allow = allow,
            c = cert.display(),
            p = peers,
        ),
    )
    .unwrap();
    cfg
}

/// A shell command that sends one forged BFD packet, AdminDown with your discriminator 0
/// (which RFC 5880 6.8.6 accepts in AdminDown), from `src` to `dst`:3784 with IP TTL `ttl`.
/// python3 (tests/setup.sh) runs it in a namespace or in the director guest alike.
pub fn forge_bfd_cmd(src: impl std::fmt::Display, dst: impl std::fmt::Display, ttl: u8) -> String {
    forge_bfd_packet_cmd(src, dst, ttl, 0, 0)
}

/// Like [`forge_bfd_cmd`] with the state (0 AdminDown, 1 Down) and Your Discriminator
/// chosen: diagnostic 7, my discriminator 4242, 1 s timers.
pub fn forge_bfd_packet_cmd(
    src: impl std::fmt::Display,
    dst: impl std::fmt::Display,
    ttl: u8,
    state: u8,
    your_disc: u32,
) -> String {
    let py = "import socket,struct,sys\n\
              s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
              s.setsockopt(socket.IPPROTO_IP,socket.IP_TTL,int(sys.argv[1]))\n\
              s.bind((sys.argv[2],0))\n\
              p=struct.pack('!BBBBIIIII',0x20|7,int(sys.argv[4])<<6,3,24,4242,int(sys.argv[5]),1000000,1000000,0)\n\
              s.sendto(p,(sys.argv[3],3784))\n";
    format!("python3 -c \"{py}\" {ttl} {src} {dst} {state} {your_disc}")
}

/// Sends [`forge_bfd_cmd`]'s packet from namespace `ns`.
pub fn forge_bfd(ns: &Netns, src: impl std::fmt::Display, dst: impl std::fmt::Display, ttl: u8) {
    forge_bfd_packet(ns, src, dst, ttl, 0, 0)
}

/// Sends [`forge_bfd_packet_cmd`]'s packet from namespace `ns`.
pub fn forge_bfd_packet(
    ns: &Netns,
    src: impl std::fmt::Display,
    dst: impl std::fmt::Display,
    ttl: u8,
    state: u8,
    your_disc: u32,
) {
    let out = ns.run(&forge_bfd_packet_cmd(src, dst, ttl, state, your_disc));
    assert!(
        out.status.success(),
        "the forger failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The agent's My Discriminator toward `director`, read off the wire in the agent's
/// namespace (one packet, `tcpdump -x`): what an attacker who can see the segment learns.
pub fn sniff_discriminator(
    ns: &Netns,
    agent: impl std::fmt::Display,
    director: impl std::fmt::Display,
) -> u32 {
    let out = ns.ok(&format!(
        "timeout 10 tcpdump -i eth0 -n -x -c 1 'udp and src host {agent} and dst host {director} and dst port 3784' 2>/dev/null"
    ));
    // The hex dump starts at the IP header: 20 bytes of IP (no options), 8 of UDP, then
    // BFD, whose My Discriminator is at bytes 4..8.
    let hex: String = out
        .lines()
        .filter(|l| l.trim_start().starts_with("0x"))
        .filter_map(|l| l.trim().split_once(":  "))
        .flat_map(|(_, h)| h.split_whitespace().take(8).collect::<Vec<_>>())
        .collect();
    let at = (20 + 8 + 4) * 2;
    u32::from_str_radix(
        hex.get(at..at + 8)
            .unwrap_or_else(|| panic!("no BFD packet seen:\n{out}")),
        16,
    )
    .unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The scripted BFD peer (bfd_peer.py) in a namespace: it speaks from `src` to the agent
/// at `dst` with the timers the test writes into its control file. Killed with its
/// namespace.
pub struct BfdPeer {
    pub ctl: PathBuf,
    pub log: PathBuf,
}

impl BfdPeer {
    pub fn start(
        ns: &Netns,
        src: impl std::fmt::Display,
        dst: impl std::fmt::Display,
        dir: &Path,
        ctl: &str,
    ) -> BfdPeer {
        let script = dir.join("bfd_peer.py");
        std::fs::write(&script, include_str!("bfd_peer.py")).unwrap();
        let p = BfdPeer {
            ctl: dir.join("bfd_peer.json"),
            log: dir.join("bfd_peer.log"),
        };
        std::fs::write(&p.ctl, ctl).unwrap();
        std::fs::write(&p.log, "").unwrap();
        ns.spawn_logged(
            &format!(
                "python3 {} {src} {dst} {} {}",
                script.display(),
                p.ctl.display(),
                p.log.display()
            ),
            &dir.join("bfd_peer.out"),
        );
        p
    }

    /// New timers or rate: the peer re-reads its control file within 10 ms.
    pub fn set(&self, ctl: &str) {
        let tmp = self.ctl.with_extension("tmp");
        std::fs::write(&tmp, ctl).unwrap();
        std::fs::rename(&tmp, &self.ctl).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Every packet received from the agent so far, one line each.
    pub fn received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Packets received from the agent during `d`.
    pub fn count_during(&self, d: Duration) -> usize {
        let before = self.received().len();
        std::thread::sleep(d);
        self.received().len() - before
    }
}

/// One line of the agent's /metrics starting with `prefix` (labels included), as a number.
pub fn metric(from: &Netns, ip: impl std::fmt::Display, prefix: &str) -> Option<f64> {
    let out = from.run(&format!("curl -s -m 5 http://{ip}:{HTTP_PORT}/metrics"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A real xrootd (Debian's) on every address of `h`, serving `/lab/who.txt` = `name` from
/// its own root under `dir`, with `hosts` as the namespace's /etc/hosts (xrootd looks
/// itself up by its host name, `name.lab`). Waits until `xrdfs root://probe ls /lab`
/// answers; returns its PID.
pub fn start_xrootd(h: &Host, dir: &Path, name: &str, hosts: &str, probe: &str) -> u32 {
    let root = dir.join("xrd-root");
    let logs = dir.join("xrd-log");
    std::fs::create_dir_all(root.join("lab")).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(root.join("lab/who.txt"), format!("{name}\n")).unwrap();
    // Debian's xrootd refuses to run as root; its log directory must be nobody's.
    h.ok(&format!(
        "chown -R nobody {} {}",
        logs.display(),
        root.display()
    ));
    let conf = dir.join("xrootd.cfg");
    std::fs::write(
        &conf,
        format!(
            "all.export /lab\noss.localroot {}\nxrd.port 1094\n",
            root.display()
        ),
    )
    .unwrap();
    h.ns.write_etc("hosts", hosts);
    let pid = h.ns.spawn_logged(
        &format!(
            "unshare -u sh -c 'hostname {name}.lab && exec xrootd -R nobody -c {} -l {}/xrootd.log -n lab'",
            conf.display(),
            logs.display()
        ),
        &dir.join("xrootd.out"),
    );
    wait_for(Duration::from_secs(15), || {
        h.ns.run(&format!("xrdfs root://{probe} ls /lab"))
            .status
            .success()
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "xrootd did not come up on {name}: {}",
            std::fs::read_to_string(dir.join("xrootd.out")).unwrap_or_default()
        )
    });
    pid
}
