//! `lvs-node doctor` against a real firewalld: the Debian `firewalld` daemon (python, nftables
//! backend) runs inside the real server's network namespace with its own system D-Bus, a
//! tmpfs over /run and its own config directory, so nothing of this machine's firewall or bus
//! is touched. It checks:
//! - with firewalld running and nothing open, doctor reports the blocked ports (GridFTP
//!   control, the data range from the GridFTP config, the report ports, BFD's UDP 3784) and
//!   prints the `firewall-cmd` lines; run as printed, they fix it and doctor is satisfied;
//! - firewalld loads the packaged service files, and the services `lvs-node
//!   firewalld-service` writes from the config open the same ports when added to the zone.

mod daemon_util;

use daemon_util::*;
use lab::dr::DIRECTOR_IP;
use lab::units::repo;
use lab::DrLab;
use std::time::Duration;

#[test]
fn doctor_finds_ports_firewalld_blocks_and_its_fix_lines_work() {
    let lab = DrLab::one_real("fwd");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let bfd = format!("[bfd]\ndirectors = [\"{DIRECTOR_IP}\"]\n");
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            extra: &bfd,
            ..NodeOpts::default()
        },
    );
    let gconf = dir.join("gridftp.conf");
    std::fs::write(&gconf, "port_range 50000,50100\n").unwrap();
    let sysconfig = dir.join("sysconfig");
    std::fs::write(&sysconfig, "").unwrap();
    let fwconf = dir.join("etc-firewalld");
    std::fs::create_dir_all(fwconf.join("services")).unwrap();
    let bin = lab::bins::lvs_node();
    let doctor = format!(
        "{} -c {} doctor --json --gridftp-conf {} --sysconfig {} --cert /nonexistent",
        bin.display(),
        cfg.display(),
        gconf.display(),
        sysconfig.display()
    );
    let fw_finding = dir.join("finding.py");
    // Prints the firewalld finding of a doctor --json run as one JSON line.
    std::fs::write(
        &fw_finding,
        "import json,sys\nd=json.load(sys.stdin)\n\
         print(json.dumps([f for f in d['findings'] if f['id'] in ('firewalld','gridftp.firewall')]))\n",
    )
    .unwrap();
    let packaged = repo().join("packaging/firewalld");
    // A process in the director's namespace: the script (under a tmpfs /run, where the
    // namespace names live) reaches that namespace through /proc/PID/ns/net.
    let director_ns_pid = lab.director.ns.spawn("sleep 600");
    // One script: every step needs the same mount namespace (D-Bus socket, tmpfs /run).
    let script = format!(
        r#"set -u
trap 'kill $FWD $DBUS $LIS 2>/dev/null; wait' EXIT
# A listener on the GridFTP port, and a connection to it from the director's namespace.
socat TCP-LISTEN:2811,reuseaddr,fork SYSTEM:'echo open' & LIS=$!
probe() {{ nsenter --net=/proc/{dpid}/ns/net socat -T 2 - TCP:{ip}:2811,connect-timeout=2 </dev/null 2>&1 | tail -1; }}
mount -t tmpfs tmpfs /run && mkdir -p /run/dbus
dbus-daemon --system --nofork --nopidfile 2>{dir}/dbus.log & DBUS=$!
FWD=
for i in $(seq 1 100); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.1; done
firewalld --nofork --nopid --system-config {fwconf} --log-file {dir}/firewalld.log >{dir}/firewalld.out 2>&1 & FWD=$!
for i in $(seq 1 150); do [ "$(firewall-cmd --state 2>/dev/null)" = running ] && break; sleep 0.2; done
echo "== state $(firewall-cmd --state 2>&1)"
echo "== before"
{doctor} | python3 {py}
echo "== packet before"
probe
echo "== fix"
{doctor} | python3 -c 'import json,sys
for f in json.load(sys.stdin)["findings"]:
    if f["id"] == "firewalld":
        for l in f["fix"].splitlines():
            if l.startswith("firewall-cmd "): print(l)' > {dir}/fix.sh
cat {dir}/fix.sh
sh -e {dir}/fix.sh >/dev/null 2>&1; echo "fix rc=$?"
echo "== after"
{doctor} | python3 {py}
echo "== packet after"
probe
echo "== packaged"
for p in $(firewall-cmd --permanent --zone=public --list-ports); do firewall-cmd -q --permanent --zone=public --remove-port=$p; done
cp {packaged}/lvs-node-gridftp.xml {packaged}/lvs-node-report.xml {fwconf}/services/
firewall-cmd -q --reload
firewall-cmd --info-service=lvs-node-gridftp | grep ports:
firewall-cmd --info-service=lvs-node-report | grep ports:
echo "== generated"
{bin} -c {cfg} firewalld-service gridftp --gridftp-conf {gconf} --sysconfig {sysconfig} > {fwconf}/services/lvs-node-gridftp.xml
{bin} -c {cfg} firewalld-service report > {fwconf}/services/lvs-node-report.xml
firewall-cmd -q --reload
firewall-cmd -q --permanent --zone=public --add-service=lvs-node-gridftp --add-service=lvs-node-report
firewall-cmd -q --reload
firewall-cmd --info-service=lvs-node-gridftp | grep ports:
firewall-cmd --info-service=lvs-node-report | grep ports:
{doctor} | python3 {py}
echo "== end"
"#,
        fwconf = fwconf.display(),
        dir = dir.0.display(),
        py = fw_finding.display(),
        packaged = packaged.display(),
        bin = bin.display(),
        cfg = cfg.display(),
        gconf = gconf.display(),
        sysconfig = sysconfig.display(),
        ip = rs.ip,
        dpid = director_ns_pid,
    );
    let sfile = dir.join("fw.sh");
    std::fs::write(&sfile, script).unwrap();
    let out = rs.ns.run(&format!("timeout 240 bash {}", sfile.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = std::fs::read_to_string(dir.join("firewalld.log")).unwrap_or_default();
    eprintln!(
        "{text}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("== end"),
        "script did not finish; firewalld log:\n{log}"
    );
    assert!(
        text.contains("== state running"),
        "firewalld did not start:\n{log}"
    );
    let section = |name: &str| -> String {
        let start = text
            .find(&format!("== {name}\n"))
            .unwrap_or_else(|| panic!("no section {name}"))
            + name.len()
            + 4;
        let end = text[start..]
            .find("\n== ")
            .map_or(text.len(), |i| start + i);
        text[start..end].to_string()
    };
    let findings = |s: &str| -> Vec<serde_json::Value> {
        serde_json::from_str(s.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {s}"))
    };

    // Nothing open: an error naming each blocked port and why it is needed.
    let before = findings(&section("before"));
    let fwd = before.iter().find(|f| f["id"] == "firewalld").unwrap();
    assert_eq!(fwd["severity"], "error", "{fwd}");
    assert_eq!(
        fwd["summary"],
        "firewalld zone public blocks 2811/tcp, 50000-50100/tcp, 8080/tcp, 8081/tcp, 3784/udp"
    );
    let detail = fwd["detail"].as_str().unwrap();
    assert!(
        detail.contains("public (the default zone (eth0 is in no zone))")
            && detail.contains("50000-50100/tcp (GridFTP passive data range)")
            && detail.contains("8081/tcp ([report] agent_check (HAProxy))")
            && detail.contains("3784/udp ([bfd] BFD control packets from the directors)"),
        "{detail}"
    );
    // The nftables reading defers to firewalld.
    let nft = before
        .iter()
        .find(|f| f["id"] == "gridftp.firewall")
        .unwrap();
    assert_eq!(nft["severity"], "ok", "{nft}");

    assert_eq!(
        section("fix").trim(),
        "firewall-cmd --permanent --zone=public --add-port=2811/tcp\n\
         firewall-cmd --permanent --zone=public --add-port=50000-50100/tcp\n\
         firewall-cmd --permanent --zone=public --add-port=8080/tcp\n\
         firewall-cmd --permanent --zone=public --add-port=8081/tcp\n\
         firewall-cmd --permanent --zone=public --add-port=3784/udp\n\
         firewall-cmd --reload\n\
         fix rc=0"
    );
    // A packet crosses the firewall only after the fix: the director's connection to
    // 2811/tcp is rejected before, and reaches the listener after.
    let before_pkt = section("packet before");
    assert!(
        !before_pkt.contains("open") && before_pkt.contains(" E "),
        "2811/tcp was not blocked before the fix: {before_pkt}\n{log}"
    );
    assert_eq!(
        section("packet after").trim(),
        "open",
        "2811/tcp still blocked after the fix lines ran\n{log}"
    );
    // Run as printed, they open the ports (permanently and now).
    let after = findings(&section("after"));
    let fwd = after.iter().find(|f| f["id"] == "firewalld").unwrap();
    assert_eq!(fwd["severity"], "ok", "{fwd}");
    assert_eq!(
        fwd["summary"],
        "firewalld zone public opens every port the node needs"
    );

    // firewalld loads the packaged services.
    let p = section("packaged");
    assert!(p.contains("ports: 2811/tcp 50000-51000/tcp"), "{p}\n{log}");
    assert!(p.contains("ports: 8080/tcp 8081/tcp"), "{p}\n{log}");

    // The services generated from the config, added to the zone, satisfy doctor too (the
    // ports now come through services, not --add-port); the report service carries BFD's
    // UDP port.
    let g = section("generated");
    assert!(g.contains("ports: 2811/tcp 50000-50100/tcp"), "{g}\n{log}");
    assert!(
        g.contains("ports: 8080/tcp 8081/tcp 3784/udp"),
        "{g}\n{log}"
    );
    let fwd = findings(&g);
    let fwd = fwd.iter().find(|f| f["id"] == "firewalld").unwrap();
    assert_eq!(fwd["severity"], "ok", "{fwd}");
}

/// With `[report] allow`, doctor's fix opens the report ports to the directors alone: one
/// rich rule per director address, no `--add-port` for them. Run as printed against the
/// real firewalld, the director reaches `/health` and the client's address does not, and
/// doctor is satisfied. (Before: the fix opened 8080/tcp to the whole zone, and the
/// client reached `/health` too.)
#[test]
fn doctor_fix_opens_report_ports_to_the_directors_only() {
    let lab = DrLab::one_real("fwr");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            report_extra: &format!("allow = [\"{DIRECTOR_IP}\"]"),
            ..NodeOpts::default()
        },
    );
    let bin = lab::bins::lvs_node();
    rs.ns.spawn_logged(
        &format!("{} -c {} -v run", bin.display(), cfg.display()),
        &dir.join("agent.log"),
    );
    // Only the director may read it ([report] allow): 503, the gridftp check fails here.
    assert!(
        wait_health(
            &lab.director.ns,
            rs.ip,
            HTTP_PORT,
            503,
            Duration::from_secs(10)
        )
        .is_some(),
        "agent not up: {}",
        std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
    );
    let gconf = dir.join("gridftp.conf");
    std::fs::write(&gconf, "port_range 50000,50100\n").unwrap();
    let sysconfig = dir.join("sysconfig");
    std::fs::write(&sysconfig, "").unwrap();
    let fwconf = dir.join("etc-firewalld");
    std::fs::create_dir_all(fwconf.join("services")).unwrap();
    let doctor = format!(
        "{} -c {} doctor --json --gridftp-conf {} --sysconfig {} --cert /nonexistent",
        bin.display(),
        cfg.display(),
        gconf.display(),
        sysconfig.display()
    );
    let fw_finding = dir.join("finding.py");
    std::fs::write(
        &fw_finding,
        "import json,sys\nd=json.load(sys.stdin)\n\
         print(json.dumps([f for f in d['findings'] if f['id'] == 'firewalld']))\n",
    )
    .unwrap();
    // The probes run while firewalld runs (it removes its rules when it stops), from the
    // director's and the client's namespaces, opened before /run is covered.
    let probe = |fd: u8| {
        format!(
            "nsenter --net=/proc/$$/fd/{fd} curl -s -o /dev/null -m 2 -w '%{{http_code}}' http://{}:{HTTP_PORT}/health; echo \" rc=$?\"",
            rs.ip
        )
    };
    let script = format!(
        r#"set -u
exec 7</run/netns/{dns} 8</run/netns/{cns}
trap 'kill $FWD $DBUS 2>/dev/null; wait' EXIT
mount -t tmpfs tmpfs /run && mkdir -p /run/dbus
dbus-daemon --system --nofork --nopidfile 2>{dir}/dbus.log & DBUS=$!
FWD=
for i in $(seq 1 100); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.1; done
firewalld --nofork --nopid --system-config {fwconf} --log-file {dir}/firewalld.log >{dir}/firewalld.out 2>&1 & FWD=$!
for i in $(seq 1 150); do [ "$(firewall-cmd --state 2>/dev/null)" = running ] && break; sleep 0.2; done
echo "== state $(firewall-cmd --state 2>&1)"
echo "== fix"
{doctor} | python3 -c 'import json,sys
for f in json.load(sys.stdin)["findings"]:
    if f["id"] == "firewalld":
        for l in f["fix"].splitlines():
            if l.startswith("firewall-cmd "): print(l)' > {dir}/fix.sh
cat {dir}/fix.sh
sh -e {dir}/fix.sh >/dev/null 2>&1; echo "fix rc=$?"
echo "== zone"
echo "ports: $(firewall-cmd --zone=public --list-ports)"
firewall-cmd --zone=public --list-rich-rules
echo "== director"
{pd}
echo "== client"
{pc}
echo "== after"
{doctor} | python3 {py}
echo "== end"
"#,
        dns = lab.director.ns.name,
        cns = lab.client.ns.name,
        pd = probe(7),
        pc = probe(8),
        fwconf = fwconf.display(),
        dir = dir.0.display(),
        py = fw_finding.display(),
    );
    let sfile = dir.join("fw.sh");
    std::fs::write(&sfile, script).unwrap();
    let out = rs.ns.run(&format!("timeout 240 bash {}", sfile.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = std::fs::read_to_string(dir.join("firewalld.log")).unwrap_or_default();
    eprintln!(
        "{text}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("== end"),
        "script did not finish; firewalld log:\n{log}"
    );
    assert!(
        text.contains("== state running"),
        "firewalld did not start:\n{log}"
    );
    let section = |name: &str| -> String {
        let start = text
            .find(&format!("== {name}\n"))
            .unwrap_or_else(|| panic!("no section {name}"))
            + name.len()
            + 4;
        let end = text[start..]
            .find("\n== ")
            .map_or(text.len(), |i| start + i);
        text[start..end].trim().to_string()
    };
    let fix = section("fix");
    let rule = |port: u16| {
        format!(
            "firewall-cmd --permanent --zone=public --add-rich-rule='rule family=\"ipv4\" source address=\"{DIRECTOR_IP}\" port port=\"{port}\" protocol=\"tcp\" accept'"
        )
    };
    assert_eq!(
        fix,
        format!(
            "firewall-cmd --permanent --zone=public --add-port=2811/tcp\n\
             firewall-cmd --permanent --zone=public --add-port=50000-50100/tcp\n\
             {}\n{}\n\
             firewall-cmd --reload\n\
             fix rc=0",
            rule(HTTP_PORT),
            rule(AGENT_PORT)
        )
    );
    let zone = section("zone");
    assert!(
        zone.starts_with("ports: 2811/tcp 50000-50100/tcp\n"),
        "the report ports must not be open to the zone: {zone}"
    );
    // The director gets the agent's answer (503: its gridftp check fails here). The
    // client's connection is rejected by firewalld (curl exit 7, couldn't connect); had it
    // crossed the firewall, the agent would have accepted and closed it (exit 52: it is
    // not in [report] allow either).
    assert_eq!(
        section("director"),
        "503 rc=0",
        "the director must reach /health"
    );
    assert_eq!(
        section("client"),
        "000 rc=7",
        "firewalld must stop the client"
    );
    let after: Vec<serde_json::Value> =
        serde_json::from_str(section("after").lines().last().unwrap_or("")).unwrap();
    assert_eq!(after[0]["severity"], "ok", "{}", after[0]);
}
