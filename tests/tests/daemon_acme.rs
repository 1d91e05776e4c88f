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
    // --path-as-is: curl sends `..` segments as written instead of resolving them itself.
    let url = |host: &str, path: &str| {
        format!("curl -s --path-as-is -m 2 -w ' %{{http_code}}' http://{host}{path}")
    };
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
        "/.well-known/acme-challenge/..%2f..%2fsecret.txt",
        "/.well-known/../secret.txt",
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

/// A shared webroot is writable by more than this node. If `.well-known` or `acme-challenge`
/// in it is a symlink, the responder must not follow it: otherwise any token-shaped file
/// name outside the webroot (a host key, here a stand-in) becomes readable on port 80.
#[test]
fn responder_never_follows_symlinked_directories() {
    let lab = DrLab::build(
        "acmeln",
        LabOpts {
            reals: 1,
            ports: vec![80],
            ..Default::default()
        },
    );
    let work = Workdir::new(&lab.prefix);
    let rs = &lab.reals[0];
    // What an attacker wants: outside every webroot.
    let outside = work.path().join("etc-ssh");
    std::fs::create_dir_all(outside.join("acme-challenge")).unwrap();
    for f in [
        outside.join("ssh_host_ed25519_key"),
        outside.join("acme-challenge/ssh_host_ed25519_key"),
    ] {
        std::fs::write(f, "PRIVATE KEY").unwrap();
    }
    // Webroot A: `.well-known` is a symlink. Webroot B: `acme-challenge` is one.
    // Webroot C: a real token, and a symlinked token file.
    let a = work.path().join("wa");
    std::fs::create_dir_all(&a).unwrap();
    std::os::unix::fs::symlink(&outside, a.join(".well-known")).unwrap();
    let b = work.path().join("wb");
    std::fs::create_dir_all(b.join(".well-known")).unwrap();
    std::os::unix::fs::symlink(&outside, b.join(".well-known/acme-challenge")).unwrap();
    let c = work.path().join("wc");
    let ch = c.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&ch).unwrap();
    std::fs::write(ch.join("tok_1"), "tok_1.thumb").unwrap();
    std::os::unix::fs::symlink(
        outside.join("ssh_host_ed25519_key"),
        ch.join("ssh_host_ed25519_key"),
    )
    .unwrap();
    for (i, root) in [&a, &b, &c].iter().enumerate() {
        rs.ns.spawn_logged(
            &format!(
                "{} serve-challenges --webroot {} --listen {}:{}",
                lab::bins::lvs_node().display(),
                root.display(),
                rs.ip,
                8001 + i
            ),
            &work.path().join(format!("resp{i}.log")),
        );
    }
    // A responder that is not listening yet gives "000" (curl's exit 7), and the wait goes on.
    let get = |port: usize, name: &str| {
        let o = lab.client.ns.run(&format!(
            "curl -s --path-as-is -m 2 -w ' %{{http_code}}' http://{}:{port}/.well-known/acme-challenge/{name}",
            rs.ip
        ));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    wait_for(Duration::from_secs(10), || {
        (get(8003, "tok_1") == "tok_1.thumb 200").then_some(())
    })
    .expect("responder C not serving its token");
    for (port, what) in [
        (8001, "symlinked .well-known"),
        (8002, "symlinked acme-challenge"),
        (8003, "symlinked token file"),
    ] {
        wait_for(Duration::from_secs(5), || {
            lab.client
                .ns
                .run(&format!(
                    "curl -s -o /dev/null -m 1 http://{}:{port}/",
                    rs.ip
                ))
                .status
                .success()
                .then_some(())
        })
        .unwrap_or_else(|| panic!("responder on {port} not up"));
        let out = get(port, "ssh_host_ed25519_key");
        assert!(!out.contains("PRIVATE KEY"), "{what}: served {out:?}");
        assert!(out.ends_with(" 404"), "{what}: {out}");
    }
}
