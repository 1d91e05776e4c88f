//! Dual stack end to end on the REAL director (qemu guest with IPVS and keepalived): an
//! IPv4 and an IPv6 VIP, both put in place by `lvs-node run` on every node, real XRootD
//! servers behind them, and report endpoints on both families (`[report] http6`,
//! `agent_check6`).
//!
//! The director's configuration is what `lvs-node director-config --pool` prints after
//! reading each node's /status over IPv6; keepalived loads it unchanged. Its IPv6 services
//! are checked over the nodes' IPv6 report endpoints, so a node whose XRootD dies leaves
//! both the IPv4 and the IPv6 service (weight 0), and `xrdcp` through either VIP goes on.

mod daemon_util;

use daemon_util::*;
use lab::dr::{Host, IpvsLab, DIRECTOR_IP, DIRECTOR_MAC, VIP, VIP6};
use lab::vm::director::Real;
use lab::{bins, wait_for};
use std::path::Path;
use std::time::Duration;

const XRD_PORT: u16 = 1094;
const DIRECTOR_IP6: &str = "2001:db8::2";

/// A real xrootd on every address of `h`, serving `/lab/who.txt` = `name`.
fn start_xrootd(h: &Host, dir: &Path, name: &str) -> u32 {
    let hosts = format!(
        "127.0.0.1 localhost\n{} {name}.lab\n{} {name}.lab\n",
        h.ip, h.ip6
    );
    daemon_util::start_xrootd(h, dir, name, &hosts, &format!("127.0.0.1:{XRD_PORT}"))
}

fn node_config(h: &Host, dir: &Path, client: &Host) -> std::path::PathBuf {
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{VIP}\"\nports = [{XRD_PORT}]\n\
             [[vip]]\naddress = \"{VIP6}\"\nports = [{XRD_PORT}]\n\
             [daemon]\nmanage_dataplane = true\ncontrol_socket = \"{d}/control.sock\"\nrecheck_interval = \"1s\"\n\
             [[check]]\nname = \"xrootd\"\nkind = \"xrootd\"\ntarget = \"127.0.0.1:{XRD_PORT}\"\n\
             interval = \"1s\"\ntimeout = \"900ms\"\nrise = 1\nfall = 2\n\
             [report]\nhttp = \"{ip}:{HTTP_PORT}\"\nhttp6 = \"[{ip6}]:{HTTP_PORT}\"\n\
             agent_check = \"{ip}:{AGENT_PORT}\"\nagent_check6 = \"[{ip6}]:{AGENT_PORT}\"\n\
             allow = [\"{DIRECTOR_IP}\", \"{DIRECTOR_IP6}\", \"{ip}\", \"{ip6}\", \"{cl}\", \"{cl6}\"]\n",
            ip = h.ip,
            ip6 = h.ip6,
            d = dir.display(),
            cl = client.ip,
            cl6 = client.ip6,
        ),
    )
    .unwrap();
    cfg
}

fn weight(w: u32) -> impl Fn(Option<&Real>) -> bool {
    move |r| r.is_some_and(|r| r.weight == w)
}

/// `xrdcp` of /lab/who.txt through `vip` (a host, bracketed for IPv6) from the client:
/// the name of the node that served it.
fn who(lab: &IpvsLab, vip: &str) -> String {
    let o = lab.client.ns.run(&format!(
        "timeout 20 xrdcp -s -f root://{vip}:{XRD_PORT}//lab/who.txt -"
    ));
    assert!(
        o.status.success(),
        "xrdcp through {vip}: {}\nipvsadm -Ln:\n{}",
        String::from_utf8_lossy(&o.stderr),
        lab.director.ipvsadm_ln()
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn ipv6_vip_through_ipvs_with_ipv6_report_endpoints() {
    let lab = IpvsLab::build_dual_stack("ds6", 2)
        .unwrap_or_else(|e| panic!("the real director guest did not come up: {e:#}"));
    let dir = TestDir::new(&lab.prefix);
    let mut xrd = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        let sub = dir.join(&format!("rs{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        xrd.push(start_xrootd(rs, &sub, &format!("rs{i}")));
        let cfg = node_config(rs, &sub, &lab.client);
        start_agent(rs, &cfg, &sub.join("agent.log"), HTTP_PORT);
        let placed = wait_for(Duration::from_secs(10), || {
            let lo = rs.ns.ok("ip -o addr show dev lo");
            (lo.contains(&format!("{VIP}/32")) && lo.contains(&format!("{VIP6}/128"))).then_some(())
        });
        assert!(
            placed.is_some(),
            "lvs-node run did not put both VIPs on lo of rs{i}"
        );
    }

    // The report endpoints answer over IPv6: /health and the agent-check line, from the
    // client (in the allow list).
    for rs in &lab.reals {
        let h = lab.client.ns.ok(&format!(
            "curl -s -m 3 -w ' %{{http_code}}' http://[{}]:{HTTP_PORT}/health",
            rs.ip6
        ));
        assert!(h.ends_with(" 200"), "/health over IPv6 on {}: {h}", rs.ip6);
        let line = lab.client.ns.ok(&format!(
            "timeout 3 bash -c 'cat < /dev/tcp/{}/{AGENT_PORT}'",
            rs.ip6
        ));
        assert!(
            line.starts_with("up ready"),
            "agent-check over IPv6 on {}: {line:?}",
            rs.ip6
        );
    }

    // The director's configuration, read from the nodes' /status over IPv6.
    let pools: String = lab
        .reals
        .iter()
        .map(|r| format!(" --pool http://[{}]:{HTTP_PORT}", r.ip6))
        .collect();
    let o = lab.client.ns.run(&format!(
        "{} -c /nonexistent director-config{pools}",
        bins::lvs_node().display()
    ));
    assert!(
        o.status.success(),
        "director-config --pool over IPv6: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let conf = String::from_utf8(o.stdout).unwrap();
    assert!(
        conf.contains(&format!("virtual_server {VIP6} {XRD_PORT}"))
            && conf.contains(&format!("virtual_server {VIP} {XRD_PORT}")),
        "{conf}"
    );
    for rs in &lab.reals {
        assert!(
            conf.contains(&format!("real_server {} {XRD_PORT}", rs.ip6))
                && conf.contains(&format!("connect_ip {}", rs.ip6)),
            "the IPv6 service must check {} over its IPv6 report endpoint:\n{conf}",
            rs.ip6
        );
    }
    std::fs::write(dir.join("keepalived.conf"), &conf).unwrap();
    lab.director
        .load_keepalived(&conf)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let addr6 = |i: usize| format!("[{}]:{XRD_PORT}", lab.reals[i].ip6);
    let addr4 = |i: usize| format!("{}:{XRD_PORT}", lab.reals[i].ip);
    let wait = |addr: String, what: &str, pred: &dyn Fn(Option<&Real>) -> bool| {
        lab.director
            .wait_real(&addr, Duration::from_secs(60), pred)
            .unwrap_or_else(|e| panic!("{addr}: want {what}; {e}"))
    };
    for i in 0..2 {
        wait(addr6(i), "weight 100", &weight(100));
        wait(addr4(i), "weight 100", &weight(100));
    }

    // Through the IPv6 VIP: every transfer completes, both nodes serve, and only the
    // director's MAC ever answered neighbour discovery for the VIP.
    let vip6 = format!("[{VIP6}]");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(who(&lab, &vip6));
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["rs0", "rs1"],
        "IPVS spread over both nodes:\n{}",
        lab.director.ipvsadm_stats()
    );
    let neigh = lab.client.ns.ok(&format!("ip -6 neigh show {VIP6}"));
    assert!(
        neigh.contains(&DIRECTOR_MAC.to_lowercase()),
        "the client's neighbour entry for {VIP6} must be the director's MAC: {neigh}"
    );
    // And the IPv4 VIP beside it.
    let v4 = who(&lab, &VIP.to_string());
    assert!(v4 == "rs0" || v4 == "rs1", "{v4}");

    // XRootD killed on rs0: both of its services go to weight 0 (the IPv6 one through the
    // IPv6 report endpoint), and transfers through the IPv6 VIP all land on rs1.
    lab.reals[0].ns.kill(xrd[0]);
    wait(addr6(0), "weight 0 after xrootd was killed", &weight(0));
    wait(addr4(0), "weight 0 after xrootd was killed", &weight(0));
    for _ in 0..3 {
        assert_eq!(who(&lab, &vip6), "rs1");
    }
    // Back on restart.
    start_xrootd(&lab.reals[0], &dir.join("rs0"), "rs0");
    wait(addr6(0), "weight 100 after xrootd restarted", &weight(100));
}
