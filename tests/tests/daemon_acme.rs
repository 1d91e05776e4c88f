//! `lvs-node run` with `[acme]`: the agent serves the shared webroot's HTTP-01 tokens on
//! VIP:80 (reached DR-style through the director) and on the real IP, and nothing else.

use lab::dr::{DrLab, LabOpts, VIP};
use lab::node::{write_config, Workdir};
use lab::wait_for;
use std::time::Duration;

#[test]
fn run_serves_acme_challenges_through_the_vip() {
    let lab = DrLab::build(
        "acmerun",
        LabOpts {
            reals: 2,
            ports: vec![80],
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let webroot = work.path().join("webroot");
    let chal = webroot.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&chal).unwrap();
    std::fs::write(chal.join("tok_EN-123"), "tok_EN-123.thumbprint").unwrap();
    std::fs::write(webroot.join("secret.txt"), "not for you").unwrap();
    for (i, rs) in lab.reals.iter().enumerate() {
        let body = format!(
            "[[vip]]\naddress = \"{VIP}\"\nports = [80]\n[daemon]\ncontrol_socket = \"{}/ctl{i}.sock\"\n[acme]\nwebroot = \"{}\"\n",
            work.path().display(),
            webroot.display()
        );
        let cfg = write_config(&work, rs, &format!("rs{i}"), &body);
        rs.ns.spawn_logged(
            &format!(
                "{} -c {} -v run",
                lab::bins::lvs_node().display(),
                cfg.display()
            ),
            &work.path().join(format!("agent{i}.log")),
        );
    }
    let url =
        |host: &str, path: &str| format!("curl -s -m 2 -w ' %{{http_code}}' http://{host}{path}");
    let up = wait_for(Duration::from_secs(10), || {
        lab.reals
            .iter()
            .all(|rs| {
                lab.client
                    .ns
                    .run(&url(
                        &rs.ip.to_string(),
                        "/.well-known/acme-challenge/tok_EN-123",
                    ))
                    .stdout
                    .ends_with(b" 200")
            })
            .then_some(())
    });
    let logs: Vec<String> = (0..2)
        .map(|i| {
            std::fs::read_to_string(work.path().join(format!("agent{i}.log"))).unwrap_or_default()
        })
        .collect();
    assert!(up.is_some(), "responders not up on the real IPs: {logs:?}");
    // Through the VIP, round robin over both nodes: every fetch is served.
    for _ in 0..6 {
        let out = lab.client.ok(&url(
            &VIP.to_string(),
            "/.well-known/acme-challenge/tok_EN-123",
        ));
        assert_eq!(out, "tok_EN-123.thumbprint 200");
    }
    // Only token-shaped names under the challenge path.
    for path in [
        "/secret.txt",
        "/.well-known/acme-challenge/../../secret.txt",
        "/.well-known/acme-challenge/a.b",
    ] {
        let out = lab.client.ok(&url(&VIP.to_string(), path));
        assert!(
            out.ends_with(" 404") || out.ends_with(" 400"),
            "{path}: {out}"
        );
        assert!(!out.contains("not for you"));
    }
}
