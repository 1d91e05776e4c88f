//! Bad configs: each is refused with exit 2, an error that names the file, the key and the
//! fix, and nothing on the host changes (no address, sysctl, rule or state file).

use lab::dr::{DrLab, LabOpts};
use lab::node::{lvs_node_env, snapshot, Workdir};

const OK_VIP: &str = "[[vip]]\naddress = \"192.0.2.100\"\n";

/// (name, config text; `STATE` is replaced by a state_dir, key expected in the error)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let base = |rest: &str| format!("interface = \"eth0\"\nstate_dir = \"STATE\"\n{rest}");
    vec![
        ("missing interface", format!("state_dir = \"STATE\"\n{OK_VIP}"), "interface"),
        ("interface too long", format!("interface = \"abcdefghijklmnopq\"\nstate_dir = \"STATE\"\n{OK_VIP}"), "interface"),
        ("interface with slash", format!("interface = \"eth/0\"\nstate_dir = \"STATE\"\n{OK_VIP}"), "interface"),
        ("interface absent on host", format!("interface = \"eth9\"\nstate_dir = \"STATE\"\n{OK_VIP}"), "interface"),
        ("unknown top-level key", base(&format!("intrface = \"eth0\"\n{OK_VIP}")), "line 3"),
        ("unknown arp key", base(&format!("[arp]\nmethd = \"sysctl\"\n{OK_VIP}")), "line 4"),
        ("unknown arp method", base(&format!("[arp]\nmethod = \"iptables\"\n{OK_VIP}")), "line 4"),
        ("no vip", base(""), "vip"),
        ("vip without address", base("[[vip]]\ndevice = \"lo\"\n"), "vip[0].address"),
        ("vip not an IP", base("[[vip]]\naddress = \"gridftp.example.org\"\n"), "vip[0].address"),
        ("vip prefix too long", base("[[vip]]\naddress = \"192.0.2.100/33\"\n"), "vip[0].address"),
        ("vip prefix zero", base("[[vip]]\naddress = \"192.0.2.100/0\"\n"), "vip[0].address"),
        ("vip loopback", base("[[vip]]\naddress = \"127.0.0.5\"\n"), "vip[0].address"),
        ("vip multicast", base("[[vip]]\naddress = \"224.0.0.5\"\n"), "vip[0].address"),
        ("vip unspecified", base("[[vip]]\naddress = \"0.0.0.0\"\n"), "vip[0].address"),
        ("vip broadcast", base("[[vip]]\naddress = \"255.255.255.255\"\n"), "vip[0].address"),
        ("vip link-local", base("[[vip]]\naddress = \"169.254.1.1\"\n"), "vip[0].address"),
        ("duplicate vip", base("[[vip]]\naddress = \"192.0.2.100\"\n[[vip]]\naddress = \"192.0.2.100/32\"\n"), "vip[1].address"),
        ("device not lo nor interface", base("[[vip]]\naddress = \"192.0.2.100\"\ndevice = \"eth1\"\n"), "vip[0].device"),
        ("wide prefix on lo", base("[[vip]]\naddress = \"192.0.2.100/24\"\n"), "vip[0].address"),
        ("ipv6 on the nic", base("[arp]\nmethod = \"nftables\"\n[[vip]]\naddress = \"2001:db8::100\"\ndevice = \"eth0\"\n"), "vip[0].device"),
        ("sysctl cannot hide a vip on the nic", base("[[vip]]\naddress = \"192.0.2.100\"\ndevice = \"eth0\"\n"), "vip[0].device"),
        ("vip equals real_ip", format!("interface = \"eth0\"\nreal_ip = \"192.0.2.100\"\nstate_dir = \"STATE\"\n{OK_VIP}"), "vip[0].address"),
        ("vip is the nic's own address", base("[[vip]]\naddress = \"192.0.2.11\"\n"), "vip[0].address"),
        ("real_ip not an IP", format!("interface = \"eth0\"\nreal_ip = \"rs1\"\nstate_dir = \"STATE\"\n{OK_VIP}"), "real_ip"),
        ("real_ip not on the interface", format!("interface = \"eth0\"\nreal_ip = \"192.0.2.99\"\nstate_dir = \"STATE\"\n[arp]\nmethod = \"arptables\"\n{OK_VIP}"), "real_ip"),
        ("port out of range", base("[[vip]]\naddress = \"192.0.2.100\"\nports = [70000]\n"), "vip[0].ports"),
        ("port zero", base("[[vip]]\naddress = \"192.0.2.100\"\nports = [0]\n"), "vip[0].ports"),
        ("duplicate port", base("[[vip]]\naddress = \"192.0.2.100\"\nports = [2811, 2811]\n"), "vip[0].ports"),
        ("ports not a list", base("[[vip]]\naddress = \"192.0.2.100\"\nports = \"2811\"\n"), "line 5"),
        ("vip as a table", base("[vip]\naddress = \"192.0.2.100\"\n"), "line 3"),
        ("relative state_dir", format!("interface = \"eth0\"\nstate_dir = \"lvs\"\n{OK_VIP}"), "state_dir"),
        ("toml syntax error", base("[[vip]]\naddress = \"192.0.2.100\n"), "line 4"),
        ("hostname with space", base("[[vip]]\naddress = \"192.0.2.100\"\nhostname = \"grid ftp\"\n"), "vip[0].hostname"),
        ("vip already on another device", base(OK_VIP).replace("PRE", ""), "vip[0].address"),
    ]
}

#[test]
fn bad_configs_exit_2_and_change_nothing() {
    let lab = DrLab::build(
        "badcfg",
        LabOpts {
            reals: 1,
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (i, (name, text, key)) in cases.iter().enumerate() {
        // The last case needs the VIP already on eth0, put there by the admin.
        let pre = *name == "vip already on another device";
        if pre {
            rs.ok("ip addr add 192.0.2.100/32 dev eth0");
        }
        let state = work.path().join(format!("state{i}"));
        let text = text.replace("STATE", &state.display().to_string());
        let cfg = work.path().join(format!("bad{i}.toml"));
        std::fs::write(&cfg, &text).unwrap();
        let before = snapshot(rs);
        for cmd in ["up", "up --dry-run", "status"] {
            let out = lvs_node_env(rs, &cfg, cmd, "");
            let err = String::from_utf8_lossy(&out.stderr);
            let ok = out.status.code() == Some(2)
                && err.contains(&cfg.display().to_string())
                && err.contains(key)
                && err.contains("fix:");
            if !ok {
                failures.push(format!(
                    "[{name}] `{cmd}` exit {:?}, want 2 naming `{key}`:\n{err}",
                    out.status.code()
                ));
            }
        }
        if snapshot(rs) != before {
            failures.push(format!("[{name}] host changed"));
        }
        if state.exists() {
            failures.push(format!("[{name}] state_dir was created"));
        }
        if pre {
            rs.ok("ip addr del 192.0.2.100/32 dev eth0");
        }
    }
    // A missing tool is a config error too (PATH without arptables).
    let cfg = work.path().join("notool.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nstate_dir = \"{}/st\"\n[arp]\nmethod = \"arptables\"\n{OK_VIP}",
            work.path().display()
        ),
    )
    .unwrap();
    let out = lvs_node_env(rs, &cfg, "up", "PATH=/nonexistent");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) || !err.contains("arp.method") || !err.contains("install") {
        failures.push(format!("[missing tool] {:?}: {err}", out.status.code()));
    }
    // A missing config file names the path and the flag.
    let out = lvs_node_env(rs, &work.path().join("nope.toml"), "up", "");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) || !err.contains("nope.toml") || !err.contains("--config") {
        failures.push(format!("[missing file] {:?}: {err}", out.status.code()));
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
