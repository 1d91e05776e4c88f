//! `lvs-node director-config --pool`: one director configuration for the whole pool, read
//! from real agents' /status in the lab (IPv4 and IPv6 VIPs). The real keepalived and
//! HAProxy config checkers accept every variant; a node that does not answer is an error
//! naming it, unless --allow-missing.

mod daemon_util;

use daemon_util::*;
use lab::dr::{Host, DIRECTOR_IP, VIP, VIP6};
use lab::{bins, DrLab, LabOpts};
use std::path::Path;
use std::process::{Command, Output};

fn node_config(rs: &Host, dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{VIP}\"\nports = [2811]\n\
             [[vip]]\naddress = \"{VIP6}\"\nports = [2811, 1094]\n\
             [daemon]\nmanage_dataplane = false\ncontrol_socket = \"{d}/control.sock\"\n\
             [weight]\nbase = 50\n\
             [report]\nhttp = \"{ip}:{HTTP_PORT}\"\nagent_check = \"{ip}:{AGENT_PORT}\"\n\
             allow = [\"{DIRECTOR_IP}\", \"{ip}\"]\n",
            ip = rs.ip,
            d = dir.display(),
        ),
    )
    .unwrap();
    cfg
}

fn director_config(lab: &DrLab, args: &str) -> Output {
    let pools: String = lab
        .reals
        .iter()
        .map(|r| format!(" --pool http://{}:{HTTP_PORT}", r.ip))
        .collect();
    lab.director.ns.run(&format!(
        "{} -c /nonexistent director-config{pools} {args}",
        bins::lvs_node().display()
    ))
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "director-config failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn keepalived_accepts(dir: &Path, conf: &str) {
    let f = dir.join("keepalived.conf");
    std::fs::write(&f, conf).unwrap();
    let out = Command::new("keepalived")
        .arg("-t")
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "keepalived -t rejected:\n{conf}\n{err}"
    );
    let low = err.to_lowercase();
    assert!(
        !low.contains("unknown keyword") && !low.contains("invalid") && !low.contains("error"),
        "keepalived -t complained:\n{conf}\n{err}"
    );
}

#[test]
fn pool_wide_keepalived_and_haproxy_configs_load_unchanged() {
    let lab = DrLab::build(
        "dirpool",
        LabOpts {
            reals: 2,
            ipv6: true,
            ..LabOpts::default()
        },
    );
    let dir = TestDir::new(&lab.prefix);
    for (i, rs) in lab.reals.iter().enumerate() {
        prepare_real_by_hand(rs);
        rs.ok(&format!("ip -6 addr add {VIP6}/128 dev lo nodad"));
        let sub = dir.join(&format!("rs{i}"));
        let cfg = node_config(rs, &sub);
        start_agent(rs, &cfg, &sub.join("agent.log"), HTTP_PORT);
    }

    // keepalived, HTTP_GET: one virtual_server per VIP and port; IPv6 VIPs with the
    // nodes' IPv6 addresses.
    let k = ok(&director_config(&lab, ""));
    eprintln!("{k}");
    for vs in [
        format!("virtual_server {VIP} 2811 {{"),
        format!("virtual_server {VIP6} 2811 {{"),
        format!("virtual_server {VIP6} 1094 {{"),
    ] {
        assert_eq!(k.matches(&vs).count(), 1, "{vs}\n{k}");
    }
    assert_eq!(k.matches("virtual_server ").count(), 3, "{k}");
    for rs in &lab.reals {
        assert!(k.contains(&format!("real_server {} 2811 {{", rs.ip)), "{k}");
        assert!(
            k.contains(&format!("real_server {} 2811 {{", rs.ip6)),
            "{k}"
        );
        assert!(
            k.contains(&format!("real_server {} 1094 {{", rs.ip6)),
            "{k}"
        );
        assert!(k.contains(&format!("connect_ip {}", rs.ip)), "{k}");
    }
    assert_eq!(k.matches("lb_kind DR").count(), 3);
    assert_eq!(k.matches("lb_algo wlc").count(), 3);
    assert_eq!(k.matches("delay_loop 1\n").count(), 3);
    assert_eq!(k.matches("inhibit_on_failure").count(), 6);
    assert_eq!(k.matches("weight 50").count(), 6);
    assert!(!k.contains("persistence_timeout"));
    // keepalived is line-oriented: one keyword (or one brace) per line.
    for l in k.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(
            l.matches('{').count() + l.matches('}').count() <= 1,
            "two blocks on one line: {l}"
        );
    }
    keepalived_accepts(&dir.0, &k);

    // MISC_CHECK through `lvs-node probe`, with persistence, delay_loop and probe path.
    let m = ok(&director_config(&lab, "--misc-check"));
    assert!(
        m.contains(&format!(
            "misc_path \"/usr/bin/lvs-node probe --agent http://{}:{HTTP_PORT} --timeout 1s\"",
            lab.reals[0].ip
        )),
        "{m}"
    );
    assert_eq!(m.matches("misc_dynamic").count(), 6);
    keepalived_accepts(&dir.0, &m);
    let m = ok(&director_config(
        &lab,
        "--misc-check --delay-loop 2s --persistence 600 --probe-path /opt/lvs/bin/lvs-node",
    ));
    assert!(m.contains("misc_path \"/opt/lvs/bin/lvs-node probe"), "{m}");
    assert_eq!(m.matches("persistence_timeout 600").count(), 3, "{m}");
    assert_eq!(m.matches("delay_loop 2\n").count(), 3, "{m}");
    keepalived_accepts(&dir.0, &m);

    // GridFTP data channels through the VIP: 2811 and the data range share a firewall mark
    // (one per VIP), with the director's mark rules beside it; 1094 stays a plain service.
    let f = ok(&director_config(&lab, "--gridftp-data-ports 50000-50100"));
    eprintln!("{f}");
    assert!(f.contains("virtual_server fwmark 2811 {"), "{f}");
    assert!(f.contains("virtual_server fwmark 2812 {"), "{f}");
    assert!(!f.contains(&format!("virtual_server {VIP} 2811")), "{f}");
    assert!(f.contains(&format!("virtual_server {VIP6} 1094 {{")), "{f}");
    assert!(f.contains(&format!(
        "iptables -t mangle -A PREROUTING -p tcp -d {VIP}/32 -m multiport --dports 2811,50000:50100 -j MARK --set-mark 2811"
    )), "{f}");
    assert!(
        f.contains(&format!(
            "ip6tables -t mangle -A PREROUTING -p tcp -d {VIP6}/128"
        )),
        "{f}"
    );
    assert!(f.contains("meta mark set 2811"), "{f}");
    assert_eq!(f.matches("persistence_timeout 300").count(), 2, "{f}");
    keepalived_accepts(&dir.0, &f);

    // HAProxy: one frontend and backend per VIP and port, with agent-check.
    let h = ok(&director_config(&lab, "--haproxy"));
    eprintln!("{h}");
    assert_eq!(h.matches("\nbackend ").count(), 3, "{h}");
    assert!(h.contains(&format!(
        "server rs-192-0-2-11-2811 192.0.2.11:2811 weight 50 check agent-check agent-addr 192.0.2.11 agent-port {AGENT_PORT}"
    )), "{h}");
    assert!(
        h.contains(&format!("ipv6@{}:1094", lab.reals[1].ip6)),
        "{h}"
    );
    let hf = dir.join("haproxy.cfg");
    std::fs::write(&hf, &h).unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&hf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "haproxy -c rejected:\n{h}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A node that does not answer: an error naming it, and nothing printed.
    let gone = "http://192.0.2.99:8080";
    let o = director_config(&lab, &format!("--pool {gone} --timeout 1s"));
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("node {gone} did not answer")),
        "{err}"
    );
    assert!(err.contains("--allow-missing"), "{err}");
    // ... unless --allow-missing: the others are configured and the missing one is named.
    let o = director_config(&lab, &format!("--pool {gone} --timeout 1s --allow-missing"));
    let a = ok(&o);
    assert!(
        a.contains(&format!(
            "LEFT OUT (did not answer, --allow-missing): {gone}"
        )),
        "{a}"
    );
    assert_eq!(a.matches("real_server ").count(), 6, "{a}");
    keepalived_accepts(&dir.0, &a);

    // Bad usage: exit 2 naming the flag.
    let o = director_config(&lab, "--pool ftp://x:1");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pool"));
}
