//! `director-config --pool ... --director A --director B --vrrp-interface IF --for A` on the
//! real IPVS director (a qemu guest): the printed config of director A, with its
//! `vrrp_instance` and `lvs_sync_daemon`, loads unchanged into keepalived there. The guest
//! becomes VRRP master (its peer B is silent), starts the IPVS master sync daemon with the
//! group's id, and serves a GridFTP transfer through the VIP. The `--sysctl` file loads
//! into the guest's kernel as printed and every key reads back.
//!
//! The two-guest failover under a transfer is not here (see docs/director.md).

mod daemon_util;

use daemon_util::*;
use lab::dr::{IpvsLab, CLIENT_IP, DIRECTOR_IP, VIP};
use lab::{bins, gridftp, wait_for};
use std::process::Command;
use std::time::Duration;

/// The other director of the group: an address on the lab network that nobody holds.
const PEER: &str = "192.0.2.3";

#[test]
fn a_pair_member_config_and_its_sysctl_load_on_the_real_director() {
    let lab = IpvsLab::build("pair", 1)
        .unwrap_or_else(|e| panic!("the real director guest did not come up: {e:#}"));
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    let sub = dir.join("rs0");
    std::fs::create_dir_all(&sub).unwrap();
    let _gft = gridftp::start(&rs.ns, rs.ip, "rs0.lab", &sub.join("gridftp.log"));
    let text = node_toml(
        rs,
        &sub,
        &NodeOpts {
            manage_dataplane: true,
            report_extra: &format!(
                "allow = [\"{DIRECTOR_IP}\", \"{CLIENT_IP}\", \"{}\"]",
                rs.ip
            ),
            ..NodeOpts::default()
        },
    );
    let cfg = sub.join("node.toml");
    std::fs::write(&cfg, text).unwrap();
    let agent_log = sub.join("agent.log");
    start_agent(rs, &cfg, &agent_log, HTTP_PORT);

    let print = |extra: &str| {
        let out = lab.client.ns.run(&format!(
            "{} director-config --pool http://{}:{HTTP_PORT} --director {DIRECTOR_IP} --director {PEER} \
             --vrrp-interface eth0 --vrid 77 {extra}",
            bins::lvs_node().display(),
            rs.ip
        ));
        assert!(
            out.status.success(),
            "director-config {extra}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let conf = print(&format!("--for {DIRECTOR_IP}"));
    let other = print(&format!("--for {PEER}"));
    for (c, me, peer, prio) in [
        (&conf, DIRECTOR_IP.to_string(), PEER, "priority 150"),
        (
            &other,
            PEER.to_string(),
            &DIRECTOR_IP.to_string()[..],
            "priority 140",
        ),
    ] {
        assert!(c.contains(&format!("unicast_src_ip {me}")), "{c}");
        assert!(
            c.contains(&format!("unicast_peer {{\n        {peer}\n")),
            "{c}"
        );
        assert!(c.contains(prio), "{c}");
        assert!(
            c.contains("virtual_router_id 77") && c.contains("lvs_sync_daemon eth0 VI_LVS id 77")
        );
        assert!(c.contains(&format!("{VIP}/32 dev eth0")), "{c}");
        assert!(c.contains("virtual_server"), "{c}");
        // Both members' configs pass the host's keepalived checker as printed.
        let f = dir.join("check.conf");
        std::fs::write(&f, c).unwrap();
        let t = Command::new("keepalived")
            .args(["-t", "-f"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            t.status.success(),
            "keepalived -t rejected:\n{c}\n{}",
            String::from_utf8_lossy(&t.stderr)
        );
    }

    // The sysctl file, as printed, into the guest's kernel.
    let sysctl = print(&format!("--for {DIRECTOR_IP} --sysctl"));
    let d = &lab.director;
    std::fs::write(d.vm.io_dir().join("90-lvs-director.conf"), &sysctl).unwrap();
    let r =
        d.vm.run("sysctl -p /lab/90-lvs-director.conf")
            .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        r.rc, 0,
        "sysctl -p refused the printed file:\n{sysctl}\n{}",
        r.out
    );
    for line in sysctl
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let (k, v) = line.split_once('=').unwrap();
        let got = d.vm.ok(&format!("sysctl -n {}", k.trim()));
        assert_eq!(got.trim(), v.trim(), "{k} after sysctl -p");
    }

    // Director A's config, unchanged, in the guest's keepalived.
    d.load_keepalived(&conf).unwrap_or_else(|e| panic!("{e:#}"));
    let master = wait_for(Duration::from_secs(30), || {
        d.keepalived_log()
            .contains("Entering MASTER STATE")
            .then_some(())
    });
    assert!(
        master.is_some(),
        "the guest did not become VRRP master:\n{}",
        d.keepalived_log()
    );
    let daemon = wait_for(Duration::from_secs(20), || {
        let s = d.vm.ok("ipvsadm -L --daemon");
        s.contains("master sync daemon").then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "no IPVS master sync daemon: {}\n{}",
            d.vm.ok("ipvsadm -L --daemon"),
            d.keepalived_log()
        )
    });
    assert!(daemon.contains("syncid=77"), "{daemon}");
    d.wait_real(
        &format!("{}:2811", rs.ip),
        Duration::from_secs(30),
        |r: Option<&lab::vm::director::Real>| r.is_some_and(|r| r.weight > 0),
    )
    .unwrap_or_else(|e| {
        panic!(
            "the node did not enter the IPVS table: {e}\n{}",
            d.keepalived_log()
        )
    });

    // A transfer through the VIP, served by the node, arrives intact.
    let (src, sum) = gridftp::make_file(&sub, "pair.bin", 2 << 20);
    let dst = dir.join("got.bin");
    let out = gridftp::url_copy(&lab.client.ns, &VIP.to_string(), &src, &dst);
    assert!(
        out.status.success(),
        "transfer through the VIP: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(gridftp::sha256(&dst), sum);
}
