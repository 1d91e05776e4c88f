//! A real boot of a real server: a qemu guest (TCG) with systemd as PID 1 on the host's
//! userland, joined to a lab bridge, with `lvs-node.service` from systemd/ enabled as
//! `systemctl enable` would, the package's drop-in (systemd/after-lvs-node.conf) on a
//! GridFTP unit that runs the real globus-gridftp-server, and node.toml in /etc/lvs-node.
//!
//! For each ARP method (sysctl, arptables, nftables), one boot asserts:
//! - when GridFTP starts, the VIP is on lo and the method's suppression is in place (the
//!   GridFTP unit's ExecStart records `ip addr`, the sysctls and the rule sets first);
//! - READY=1 came after the convergence: in the journal, the agent's "converged the data
//!   plane" precedes systemd's "Started" for lvs-node, which precedes GridFTP's start;
//! - the unit ran under its full sandbox (capabilities, system-call filter) with the `nft`
//!   and `arptables` children: active, no restart;
//! - no ARP reply for the VIP ever left the guest during the boot, seen by tcpdump in a lab
//!   namespace that sends `arping -c 1 -w 1` for the VIP and for the guest's real IP in a
//!   loop all along; the replies for the real IP are the positive control;
//! - the drop-in orders the xrootd@/cmsd@ template instances (systemctl show on a stand-in
//!   template).
//!
//! A fourth boot names a missing interface: lvs-node exits 4 after start_timeout, its unit
//! fails without restarting, and GridFTP does not start.
//!
//! The guest reports through its /lab share (see tests/src/vm.rs): a oneshot unit ordered
//! after both services writes /lab/report.txt and /lab/done. Boots run one at a time.

use lab::netns::unique_prefix;
use lab::vm::{Vm, VmOpts};
use lab::{bins, Netns};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const RIP: &str = "192.0.2.11";
const VIP: &str = "192.0.2.100";
const PROBER_IP: &str = "192.0.2.1";
const GUEST_MAC: &str = "02:00:00:00:00:0b";
const PROBER_MAC: &str = "02:00:00:00:00:01";

/// From qemu's start to /lab/done: a systemd boot of the host's userland under TCG takes
/// about a minute on an idle machine (docs/lab.md).
const BOOT_BOUND: Duration = Duration::from_secs(360);

/// One TCG guest at a time: two would share the two cores and each take twice as long.
static ONE_BOOT: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    lab::units::repo()
}

fn write(root: &Path, rel: &str, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&p);
    symlink(target, &p).unwrap();
}

/// The GridFTP unit: what globus-gridftp-server's package would ship, running the real
/// server. Its ExecStart records what the server finds as it starts.
const GRIDFTP_UNIT: &str = "[Unit]
Description=GridFTP server (lab unit running the real globus-gridftp-server)
[Service]
ExecStart=/usr/local/sbin/lab-gridftp
[Install]
WantedBy=multi-user.target
";

const GRIDFTP_WRAPPER: &str = r#"#!/bin/sh
{
  echo "uptime $(cut -d' ' -f1 /proc/uptime)"
  echo "== lo"
  ip -o addr show dev lo
  for k in arp_ignore arp_announce; do
    echo "sysctl $k all=$(cat /proc/sys/net/ipv4/conf/all/$k) eth0=$(cat /proc/sys/net/ipv4/conf/eth0/$k)"
  done
  echo "== nft"
  nft list ruleset
  echo "== end nft"
} >/lab/gridftp-start.txt 2>&1
exec /usr/sbin/globus-gridftp-server -aa -anonymous-user nobody -p 2811 -l /lab/gridftp.log -data-interface 192.0.2.11 -port-range 50000,50100
"#;

const NET_UNIT: &str = "[Unit]
Description=lab: the guest's address on the lab bridge (the kernel has no ip=)
Before=network-pre.target lvs-node.service
Wants=network-pre.target
BindsTo=sys-subsystem-net-devices-eth0.device
After=sys-subsystem-net-devices-eth0.device
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'ip link set lo up && ip addr add 192.0.2.11/24 dev eth0 && ip link set eth0 up'
[Install]
WantedBy=multi-user.target
";

const REPORT_UNIT: &str = "[Unit]
Description=lab: report the boot to the host
After=lvs-node.service globus-gridftp-server.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lab-report
[Install]
WantedBy=multi-user.target
";

const REPORT: &str = r#"#!/bin/sh
# GridFTP (Type=simple) counts as started at fork: give it a moment to listen.
sleep 2
{
  for u in lvs-node.service globus-gridftp-server.service; do
    for p in ActiveState SubState Result ExecMainStatus NRestarts; do
      echo "unit $u $p=$(systemctl show -p $p --value $u)"
    done
  done
  for u in globus-gridftp-server.service xrootd@lab.service cmsd@lab.service; do
    for p in After Wants; do
      echo "dep $u $p=$(systemctl show -p $p --value $u)"
    done
  done
  echo "== listen"
  ss -ltn
  echo "== journal"
  journalctl -b -o short-monotonic --no-pager -u lvs-node.service -u globus-gridftp-server.service
  echo "== end journal"
} >/lab/report.txt 2>&1
touch /lab/done
"#;

/// The overlay's upper directory for one boot: the project's unit and drop-in where the
/// packages put them, lvs-node enabled, node.toml, the lab's own units, and masks for
/// what the host has enabled and the test does not need (faster, and no firewalld or
/// keepalived touching the network).
fn upper(dir: &Path, node_toml: &str) {
    let unit = std::fs::read_to_string(repo().join("systemd/lvs-node.service")).unwrap();
    let dropin = std::fs::read_to_string(repo().join("systemd/after-lvs-node.conf")).unwrap();
    write(dir, "usr/lib/systemd/system/lvs-node.service", &unit, 0o644);
    // A copy, not a link to the build: the unit's PrivateTmp= hides /tmp, where a checkout
    // may live. Debug info stripped (as the packages do): the copy lands in the guest's tmpfs.
    let bin = dir.join("usr/bin/lvs-node");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    let out = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&bin)
        .arg(bins::lvs_node())
        .output()
        .expect("run strip (binutils)");
    assert!(
        out.status.success(),
        "strip --strip-debug {}: {}",
        bins::lvs_node().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    link(
        dir,
        "etc/systemd/system/multi-user.target.wants/lvs-node.service",
        "/usr/lib/systemd/system/lvs-node.service",
    );
    // The agent's INFO lines, for the journal order below; nothing else changes.
    write(
        dir,
        "etc/systemd/system/lvs-node.service.d/lab-log.conf",
        "[Service]\nEnvironment=RUST_LOG=info\n",
        0o644,
    );
    write(dir, "etc/lvs-node/node.toml", node_toml, 0o644);
    for u in [
        "globus-gridftp-server.service",
        "xrootd@.service",
        "cmsd@.service",
    ] {
        write(
            dir,
            &format!("usr/lib/systemd/system/{u}.d/lvs-node.conf"),
            &dropin,
            0o644,
        );
    }
    write(
        dir,
        "usr/lib/systemd/system/globus-gridftp-server.service",
        GRIDFTP_UNIT,
        0o644,
    );
    for t in ["xrootd@.service", "cmsd@.service"] {
        write(
            dir,
            &format!("usr/lib/systemd/system/{t}"),
            "[Unit]\nDescription=lab stand-in template\n[Service]\nExecStart=/bin/true\n",
            0o644,
        );
    }
    write(dir, "usr/local/sbin/lab-gridftp", GRIDFTP_WRAPPER, 0o755);
    write(dir, "usr/local/sbin/lab-report", REPORT, 0o755);
    write(dir, "etc/systemd/system/lab-net.service", NET_UNIT, 0o644);
    write(
        dir,
        "etc/systemd/system/lab-report.service",
        REPORT_UNIT,
        0o644,
    );
    for u in [
        "globus-gridftp-server.service",
        "lab-net.service",
        "lab-report.service",
    ] {
        let target = if u.starts_with("lab-") {
            format!("/etc/systemd/system/{u}")
        } else {
            format!("/usr/lib/systemd/system/{u}")
        };
        link(
            dir,
            &format!("etc/systemd/system/multi-user.target.wants/{u}"),
            &target,
        );
    }
    // udev names the NIC by its PCI slot (ens4) despite net.ifnames=0: pin it to eth0.
    write(
        dir,
        "etc/systemd/network/10-lab.link",
        &format!("[Match]\nMACAddress={GUEST_MAC}\n[Link]\nName=eth0\n"),
        0o644,
    );
    // GridFTP needs its host name to resolve.
    write(dir, "etc/hostname", "lvslab-rs1\n", 0o644);
    write(
        dir,
        "etc/hosts",
        "127.0.0.1 localhost\n192.0.2.11 lvslab-rs1\n",
        0o644,
    );
    let mut masks: Vec<String> = [
        "networking.service",
        "NetworkManager.service",
        "systemd-networkd.service",
        "systemd-timesyncd.service",
        "firewalld.service",
        "keepalived.service",
        "ipvsadm.service",
        "globus-gridftp-sshftp.service",
        "apache-htcacheclean.service",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for wants in ["multi-user.target.wants", "timers.target.wants"] {
        if let Ok(rd) = std::fs::read_dir(Path::new("/etc/systemd/system").join(wants)) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".service") || n.ends_with(".timer") {
                    masks.push(n);
                }
            }
        }
    }
    for m in masks {
        link(dir, &format!("etc/systemd/system/{m}"), "/dev/null");
    }
}

fn node_toml(interface: &str, method: &str, extra: &str) -> String {
    format!(
        "interface = \"{interface}\"\nreal_ip = \"{RIP}\"\n\
         [[vip]]\naddress = \"{VIP}\"\nports = [2811]\n\
         [arp]\nmethod = \"{method}\"\n\
         [daemon]\n{extra}\n\
         [report]\nhttp = \"{RIP}:8080\"\n"
    )
}

/// The lab side: a bridge and a prober namespace that watches ARP on the wire.
struct Lab {
    prober: Netns,
    bridge: Netns,
    capture: PathBuf,
}

impl Lab {
    fn build(tag: &str, dir: &Path) -> Lab {
        lab::netns::require_root();
        let p = unique_prefix(tag);
        let bridge = Netns::new(&format!("{p}br"));
        bridge.ok("ip link add br0 type bridge && ip link set br0 up");
        let prober = Netns::new(&format!("{p}pr"));
        prober.disable_ipv6();
        bridge.disable_ipv6();
        let out = lab::netns::host(&format!(
            "ip link add name eth0 netns {} address {PROBER_MAC} type veth peer name p0 netns {}",
            prober.name, bridge.name
        ));
        assert!(out.status.success(), "veth: {out:?}");
        bridge.ok("ip link set p0 master br0 up");
        prober.ok(&format!(
            "ip addr add {PROBER_IP}/24 dev eth0 && ip link set eth0 up"
        ));
        let capture = dir.join("arp.txt");
        // tcpdump first, then the arping loop: every request and reply is on the capture.
        prober.spawn_logged("tcpdump -i eth0 -n -e -l arp", &capture);
        std::thread::sleep(Duration::from_millis(500));
        prober.spawn(&format!(
            "sh -c 'while :; do arping -c 1 -w 1 -I eth0 {VIP}; arping -c 1 -w 1 -I eth0 {RIP}; done' >/dev/null 2>&1"
        ));
        Lab {
            prober,
            bridge,
            capture,
        }
    }

    fn arp(&self) -> String {
        std::fs::read_to_string(&self.capture).unwrap_or_default()
    }
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One boot: returns the report, the GridFTP start record (if it started) and the ARP
/// capture.
struct Boot {
    report: String,
    gridftp_start: Option<String>,
    arp: String,
    console: String,
}

fn boot(tag: &str, node_toml: &str) -> Boot {
    let _one = ONE_BOOT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch(std::env::temp_dir().join(format!("{}-boot", unique_prefix(tag))));
    std::fs::create_dir_all(&dir.0).unwrap();
    let up = dir.0.join("upper");
    upper(&up, node_toml);
    let lab = Lab::build(tag, &dir.0);
    let mut opts = VmOpts::new(tag).on_bridge(&lab.bridge.name, "br0");
    opts.mac = GUEST_MAC.into();
    opts.memory_mb = 512;
    opts.upper = Some(up.clone());
    // No nf_tables modules preloaded: the kernel loads them on the agent's first `nft` or
    // `arptables` call, as on a real host (ProtectKernelModules= does not stop that).
    let mut vm = Vm::boot_systemd(&opts).unwrap_or_else(|e| panic!("booting the guest: {e:#}"));
    if let Err(e) = vm.wait_file("done", BOOT_BOUND) {
        panic!(
            "the guest did not finish its boot report: {e:#}\nARP capture tail:\n{}",
            tail(&lab.arp(), 10)
        );
    }
    // One more round of the ARP loop after the boot, with the agent running.
    std::thread::sleep(Duration::from_secs(3));
    let report = std::fs::read_to_string(vm.io_dir().join("report.txt")).unwrap();
    let gridftp_start = std::fs::read_to_string(vm.io_dir().join("gridftp-start.txt")).ok();
    let console = vm.console_tail(30);
    drop(vm);
    let arp = lab.arp();
    drop(lab.prober);
    Boot {
        report,
        gridftp_start,
        arp,
        console,
    }
}

fn tail(s: &str, n: usize) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

fn unit_prop(report: &str, unit: &str, prop: &str) -> String {
    let key = format!("unit {unit} {prop}=");
    report
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {unit} {prop} in the report:\n{report}"))
        .to_string()
}

/// The monotonic time of the first journal line containing `needle`.
fn journal_time(report: &str, needle: &str) -> Option<f64> {
    report
        .lines()
        .skip_while(|l| *l != "== journal")
        .find(|l| l.contains(needle))
        .and_then(|l| {
            let l = l.trim_start().strip_prefix('[')?;
            l[..l.find(']')?].trim().parse().ok()
        })
}

/// No ARP reply for the VIP and no ARP from the guest that announces the VIP; the guest's
/// replies for its real IP show that the capture sees the guest at all.
fn assert_arp_clean(b: &Boot) {
    let vip_replies: Vec<&str> = b
        .arp
        .lines()
        .filter(|l| l.contains(&format!("Reply {VIP} is-at")))
        .collect();
    assert!(
        vip_replies.is_empty(),
        "an ARP reply for the VIP left the guest during the boot:\n{}",
        vip_replies.join("\n")
    );
    let announces: Vec<&str> = b
        .arp
        .lines()
        .filter(|l| l.starts_with_mac(GUEST_MAC) && l.contains(&format!("tell {VIP}")))
        .collect();
    assert!(
        announces.is_empty(),
        "the guest sent ARP requests with the VIP as sender:\n{}",
        announces.join("\n")
    );
    let rip_replies = b
        .arp
        .lines()
        .filter(|l| l.contains(&format!("Reply {RIP} is-at {GUEST_MAC}")))
        .count();
    assert!(
        rip_replies >= 1,
        "positive control failed: the capture saw no ARP reply for the guest's real IP, so \
         it could not have seen one for the VIP either; capture tail:\n{}",
        tail(&b.arp, 20)
    );
    let vip_requests = b
        .arp
        .lines()
        .filter(|l| {
            // iputils arping fills in the target MAC: `who-has VIP (ff:ff:...) tell ...`.
            l.contains(&format!("who-has {VIP} ")) && l.contains(&format!("tell {PROBER_IP},"))
        })
        .count();
    assert!(
        vip_requests >= 10,
        "only {vip_requests} ARP requests for the VIP during the whole boot: the loop did not \
         run all along; capture tail:\n{}",
        tail(&b.arp, 20)
    );
}

trait MacLine {
    fn starts_with_mac(&self, mac: &str) -> bool;
}

impl MacLine for &str {
    /// tcpdump -e lines start with a time stamp, then `SRC > DST`.
    fn starts_with_mac(&self, mac: &str) -> bool {
        self.split_whitespace().nth(1) == Some(mac)
    }
}

fn converged_boot(method: &str, suppressed: impl Fn(&str) -> bool) {
    let b = boot(
        &format!("boot{method}"),
        // Under TCG the arptables method's first convergence takes about 15 s (the unit's
        // TimeoutStartSec=90s stays above this).
        &node_toml("eth0", method, "start_timeout = \"80s\""),
    );
    let r = &b.report;
    let ctx = || format!("report:\n{r}\nconsole:\n{}", b.console);
    assert_eq!(
        unit_prop(r, "lvs-node.service", "ActiveState"),
        "active",
        "{}",
        ctx()
    );
    assert_eq!(
        unit_prop(r, "lvs-node.service", "NRestarts"),
        "0",
        "{}",
        ctx()
    );
    assert_eq!(
        unit_prop(r, "globus-gridftp-server.service", "SubState"),
        "running",
        "{}",
        ctx()
    );
    assert!(
        r.contains(&format!("{RIP}:2811")) || r.contains("*:2811") || r.contains("0.0.0.0:2811"),
        "GridFTP does not listen on 2811:\n{}",
        ctx()
    );
    let start = b
        .gridftp_start
        .as_deref()
        .unwrap_or_else(|| panic!("GridFTP never started:\n{}", ctx()));
    assert!(
        start.contains(&format!("inet {VIP}/32")),
        "the VIP was not on lo when GridFTP started:\n{start}"
    );
    assert!(
        suppressed(start),
        "ARP suppression ({method}) not in place when GridFTP started:\n{start}"
    );
    let conv = journal_time(r, "converged the data plane");
    let ready = journal_time(r, "Started lvs-node.service");
    let gridftp = journal_time(r, "Started globus-gridftp-server.service");
    match (conv, ready, gridftp) {
        (Some(c), Some(s), Some(g)) => {
            assert!(
                c <= s && s <= g,
                "journal order: converged {c}, lvs-node started (READY=1) {s}, GridFTP started {g}\n{}",
                ctx()
            );
        }
        _ => panic!(
            "journal lacks the convergence or the start lines ({conv:?} {ready:?} {gridftp:?}):\n{}",
            ctx()
        ),
    }
    for u in [
        "globus-gridftp-server.service",
        "xrootd@lab.service",
        "cmsd@lab.service",
    ] {
        for p in ["After", "Wants"] {
            let key = format!("dep {u} {p}=");
            let v = r.lines().find_map(|l| l.strip_prefix(&key)).unwrap_or("");
            assert!(
                v.split_whitespace().any(|x| x == "lvs-node.service"),
                "{u} {p}= lacks lvs-node.service ({v}): the drop-in does not apply\n{}",
                ctx()
            );
        }
    }
    assert_arp_clean(&b);
}

#[test]
fn boot_with_sysctl_method() {
    converged_boot("sysctl", |s| {
        s.contains("sysctl arp_ignore all=1") && s.contains("sysctl arp_announce all=2")
    });
}

#[test]
fn boot_with_nftables_method() {
    converged_boot("nftables", |s| {
        let nft = s.split("== nft").nth(1).unwrap_or("");
        nft.contains("table arp") && nft.contains(VIP) && nft.contains("drop")
    });
}

#[test]
fn boot_with_arptables_method() {
    // arptables-nft keeps its rules in nf_tables (`table arp filter`), so the same listing
    // shows them.
    converged_boot("arptables", |s| {
        let nft = s.split("== nft").nth(1).unwrap_or("");
        nft.contains("table arp filter") && nft.contains(VIP) && nft.contains("drop")
    });
}

#[test]
fn boot_that_cannot_converge_fails_the_unit_and_gridftp_does_not_start() {
    let b = boot(
        "bootfail",
        &node_toml("eth9", "sysctl", "start_timeout = \"5s\""),
    );
    let r = &b.report;
    let ctx = || format!("report:\n{r}\nconsole:\n{}", b.console);
    assert_eq!(
        unit_prop(r, "lvs-node.service", "ActiveState"),
        "failed",
        "{}",
        ctx()
    );
    assert_eq!(
        unit_prop(r, "lvs-node.service", "ExecMainStatus"),
        "4",
        "{}",
        ctx()
    );
    // RestartPreventExitStatus=2 4: no restart loop.
    assert_eq!(
        unit_prop(r, "lvs-node.service", "NRestarts"),
        "0",
        "{}",
        ctx()
    );
    assert_ne!(
        unit_prop(r, "globus-gridftp-server.service", "ActiveState"),
        "active",
        "{}",
        ctx()
    );
    assert!(
        b.gridftp_start.is_none(),
        "GridFTP started on a node whose data plane never converged:\n{}",
        b.gridftp_start.unwrap_or_default()
    );
    assert!(
        r.contains("start_timeout"),
        "the journal does not name start_timeout:\n{}",
        ctx()
    );
}
