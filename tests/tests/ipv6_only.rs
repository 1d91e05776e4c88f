//! IPv6-only nodes on the REAL director (qemu guest with IPVS and keepalived): the real
//! servers have no IPv4 address at all, on eth0 or lo, and still run the whole feature set:
//! the VIP on lo, neighbour-discovery suppression, the report endpoint, BFD to the
//! director, `[pool]`, `pool status` and `director-config`.
//!
//! The node config names only `real_ip6`; `[bfd] source` is left out and defaults to it
//! because the director is IPv6. The director's configuration is what
//! `director-config --pool ... --bfd` prints from the nodes' `/status` over IPv6: it holds
//! IPv6 services only, and keepalived loads it unchanged.

mod daemon_util;

use daemon_util::*;
use lab::dr::{Host, IpvsLab, DIRECTOR_MAC, VIP, VIP6};
use lab::vm::director::{tail, Real};
use lab::{bins, wait_for};
use std::path::{Path, PathBuf};
use std::time::Duration;

const XRD_PORT: u16 = 1094;
const DIRECTOR_IP6: &str = "2001:db8::2";

/// Removes every IPv4 address from the namespace (eth0 and lo), so nothing IPv4 is left
/// for the agent to fall back on.
fn strip_ipv4(h: &Host) {
    h.ns.ok("ip -4 addr flush dev eth0 && ip -4 addr flush dev lo");
    let left = h.ns.ok("ip -4 -o addr show");
    assert!(left.trim().is_empty(), "IPv4 left on {}: {left}", h.ip6);
}

/// A real xrootd on the node's IPv6 addresses, serving `/lab/who.txt` = `name`; its own
/// host name resolves to its IPv6 address only.
fn start_xrootd(h: &Host, dir: &Path, name: &str) -> u32 {
    let hosts = format!("::1 localhost\n{} {name}.lab\n", h.ip6);
    daemon_util::start_xrootd(h, dir, name, &hosts, &format!("[::1]:{XRD_PORT}"))
}

fn node_config(h: &Host, peer: &Host, dir: &Path, client: &Host) -> PathBuf {
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip6 = \"{ip6}\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{VIP6}\"\nports = [{XRD_PORT}]\n\
             [daemon]\nmanage_dataplane = true\ncontrol_socket = \"{d}/control.sock\"\nrecheck_interval = \"1s\"\n\
             [[check]]\nname = \"xrootd\"\nkind = \"xrootd\"\ntarget = \"[::1]:{XRD_PORT}\"\n\
             interval = \"1s\"\ntimeout = \"900ms\"\nrise = 1\nfall = 2\n\
             [report]\nhttp = \"[{ip6}]:{HTTP_PORT}\"\n\
             allow = [\"{DIRECTOR_IP6}\", \"{ip6}\", \"{peer6}\", \"{cl6}\"]\n\
             [bfd]\ndirectors = [\"{DIRECTOR_IP6}\"]\n\
             [pool]\npeers = [\"http://[{ip6}]:{HTTP_PORT}\", \"http://[{peer6}]:{HTTP_PORT}\"]\n\
             self = \"http://[{ip6}]:{HTTP_PORT}\"\n",
            ip6 = h.ip6,
            peer6 = peer.ip6,
            d = dir.display(),
            cl6 = client.ip6,
        ),
    )
    .unwrap();
    cfg
}

fn weight(w: u32) -> impl Fn(Option<&Real>) -> bool {
    move |r| r.is_some_and(|r| r.weight == w)
}

/// `xrdcp` of /lab/who.txt through the IPv6 VIP from the client: the node that served it.
fn who(lab: &IpvsLab) -> String {
    let o = lab.client.ns.run(&format!(
        "timeout 20 xrdcp -s -f root://[{VIP6}]:{XRD_PORT}//lab/who.txt -"
    ));
    assert!(
        o.status.success(),
        "xrdcp through [{VIP6}]: {}\nipvsadm -Ln:\n{}",
        String::from_utf8_lossy(&o.stderr),
        lab.director.ipvsadm_ln()
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A BFD session state from the node's /metrics over IPv6 (3 up, 0 admin_down).
fn bfd_state(lab: &IpvsLab, rs: &Host) -> Option<i64> {
    metric(
        &lab.client.ns,
        format!("[{}]", rs.ip6),
        &format!("lvs_realserver_bfd_session_state{{director=\"{DIRECTOR_IP6}\"}}"),
    )
    .map(|v| v as i64)
}

#[test]
fn an_ipv6_only_pool_runs_vip_ndp_report_bfd_pool_and_director_config() {
    let lab = IpvsLab::build_dual_stack("v6only", 2)
        .unwrap_or_else(|e| panic!("the real director guest did not come up: {e:#}"));
    let dir = TestDir::new(&lab.prefix);
    for rs in &lab.reals {
        strip_ipv4(rs);
    }
    let mut xrd = Vec::new();
    let mut logs = Vec::new();
    let mut cfgs = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        let sub = dir.join(&format!("rs{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        xrd.push(start_xrootd(rs, &sub, &format!("rs{i}")));
        let peer = &lab.reals[1 - i];
        let cfg = node_config(rs, peer, &sub, &lab.client);
        let log = sub.join("agent.log");
        rs.ns.spawn_logged(
            &format!("{} -c {} -v run", bins::lvs_node().display(), cfg.display()),
            &log,
        );
        let up = wait_for(Duration::from_secs(10), || {
            let (code, _) = health(&rs.ns, format!("[{}]", rs.ip6), HTTP_PORT);
            let lo = rs.ns.ok("ip -o addr show dev lo");
            (code == 200 && lo.contains(&format!("{VIP6}/128"))).then_some(())
        });
        assert!(
            up.is_some(),
            "rs{i}: lvs-node run without IPv4 did not put {VIP6} on lo and answer /health over IPv6:\n{}",
            tail(&std::fs::read_to_string(&log).unwrap_or_default(), 20)
        );
        // The VIP is on lo with the flags that keep it from being used as a source or
        // announced; nothing IPv4 appeared.
        let lo = rs.ns.ok("ip -o -6 addr show dev lo");
        assert!(lo.contains(&format!("{VIP6}/128")), "{lo}");
        assert!(rs.ns.ok("ip -4 -o addr show").trim().is_empty());
        logs.push(log);
        cfgs.push(cfg);
    }

    // The director's config from both nodes' /status over IPv6: IPv6 services only, BFD
    // to each node from the director's IPv6 address; keepalived loads it unchanged.
    let pools: String = lab
        .reals
        .iter()
        .map(|r| format!(" --pool http://[{}]:{HTTP_PORT}", r.ip6))
        .collect();
    let o = lab.client.ns.run(&format!(
        "{} -c /nonexistent director-config{pools} --bfd --bfd-source {DIRECTOR_IP6}",
        bins::lvs_node().display()
    ));
    assert!(
        o.status.success(),
        "director-config --pool over IPv6: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let conf = String::from_utf8(o.stdout).unwrap();
    assert!(
        conf.contains(&format!("virtual_server {VIP6} {XRD_PORT}")),
        "{conf}"
    );
    assert!(
        !conf.contains(&format!("virtual_server {VIP} ")),
        "an IPv6-only pool has no IPv4 service:\n{conf}"
    );
    for rs in &lab.reals {
        assert!(
            conf.contains(&format!("real_server {} {XRD_PORT}", rs.ip6))
                && conf.contains(&format!("connect_ip {}", rs.ip6))
                && conf.contains(&format!("neighbor_ip {}", rs.ip6)),
            "{} must be checked and BFD-watched over IPv6:\n{conf}",
            rs.ip6
        );
    }
    std::fs::write(dir.join("keepalived.conf"), &conf).unwrap();
    lab.director
        .load_keepalived(&conf)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let addr6 = |i: usize| format!("[{}]:{XRD_PORT}", lab.reals[i].ip6);
    let wait = |addr: String, what: &str, pred: &dyn Fn(Option<&Real>) -> bool| {
        lab.director
            .wait_real(&addr, Duration::from_secs(60), pred)
            .unwrap_or_else(|e| panic!("{addr}: want {what}; {e}"))
    };
    for i in 0..2 {
        wait(addr6(i), "weight 100", &weight(100));
    }

    // BFD is Up to the director on both nodes, sourced from real_ip6.
    for rs in &lab.reals {
        let up = wait_for(Duration::from_secs(20), || {
            (bfd_state(&lab, rs) == Some(3)).then_some(())
        });
        assert!(
            up.is_some(),
            "BFD to {DIRECTOR_IP6} from {} never came Up (state {:?})",
            rs.ip6,
            bfd_state(&lab, rs)
        );
    }

    // Transfers through the IPv6 VIP reach both nodes, and only the director's MAC
    // answers neighbour discovery for the VIP.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(who(&lab));
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["rs0", "rs1"],
        "IPVS spread over both nodes:\n{}",
        lab.director.ipvsadm_stats()
    );
    let macs = lab::dr::na_sources(&lab.client.ns, &dir.join("na.txt"), VIP6);
    assert_eq!(
        macs,
        vec![DIRECTOR_MAC.to_lowercase()],
        "only the director may answer neighbour solicitations for {VIP6}; nodes {} {}",
        lab.reals[0].mac,
        lab.reals[1].mac
    );

    // The pool view over IPv6: both nodes up, `pool status` exits 0.
    let o = lvs(&lab.reals[0].ns, &cfgs[0], "pool status");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "pool status: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for rs in &lab.reals {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("http://[{}]:{HTTP_PORT} ", rs.ip6)))
            .unwrap_or_else(|| panic!("no pool status line for {}:\n{text}", rs.ip6));
        assert!(
            line.split_whitespace().nth(1) == Some("up"),
            "{}: {line}",
            rs.ip6
        );
    }

    // XRootD killed on rs0: the director takes it out (weight 0), every transfer lands on
    // rs1, and the pool view says rs0 is down (pool status exits non-zero).
    lab.reals[0].ns.kill(xrd[0]);
    wait(addr6(0), "weight 0 after xrootd was killed", &weight(0));
    for _ in 0..3 {
        assert_eq!(who(&lab), "rs1");
    }
    let down = wait_for(Duration::from_secs(15), || {
        let o = lvs(&lab.reals[1].ns, &cfgs[1], "pool status");
        (o.status.code() != Some(0)).then_some(String::from_utf8_lossy(&o.stdout).into_owned())
    })
    .expect("pool status on rs1 never reported rs0 down");
    assert!(
        down.lines().any(
            |l| l.starts_with(&format!("http://[{}]:{HTTP_PORT} ", lab.reals[0].ip6))
                && l.split_whitespace().nth(1) == Some("down")
        ),
        "{down}"
    );
}
