//! The `https` check against real TLS servers (`openssl s_server`) inside a lab real
//! server, with a test CA made by openssl here: a good certificate is up; an expired one
//! and one for another name are down with the reason in /health; a server that requires
//! a client certificate is down without one and up with one. `sni` is used throughout
//! (the check connects to 127.0.0.1 and verifies the name `storage.lab`).

mod daemon_util;

use daemon_util::*;
use lab::dr::Host;
use lab::{bins, wait_for, DrLab};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn openssl(dir: &Path, args: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("cd {} && openssl {args}", dir.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, server certificates (good, expired, wrong name) and a client certificate.
fn make_pki(dir: &Path) {
    openssl(
        dir,
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=LabTestCA",
    );
    std::fs::write(
        dir.join("srv.ext"),
        "subjectAltName=DNS:storage.lab\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("other.ext"),
        "subjectAltName=DNS:other.lab\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("cli.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, subj, ext, days) in [
        ("good", "storage.lab", "srv.ext", "2"),
        ("expired", "storage.lab", "srv.ext", "-1"),
        ("other", "other.lab", "other.ext", "2"),
        ("client", "lab-client", "cli.ext", "2"),
    ] {
        openssl(
            dir,
            &format!(
                "req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr -subj /CN={subj}"
            ),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem -days {days} -extfile {ext}"
            ),
        );
    }
}

/// Writes a node config with one https check (extra keys in `keys`) and starts the agent
/// on `port`.
fn agent(rs: &Host, dir: &Path, name: &str, port: u16, keys: &str) -> u32 {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    let cfg = sub.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{vip}\"\nports = [2811]\n\
             [daemon]\nmanage_dataplane = false\ncontrol_socket = \"{d}/control.sock\"\n\
             [[check]]\nname = \"tls\"\nkind = \"https\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nrise = 1\nfall = 1\n\
             sni = \"storage.lab\"\n{keys}\n\
             [report]\nhttp = \"{ip}:{port}\"\nallow = [\"{dir_ip}\"]\n",
            ip = rs.ip,
            dir_ip = lab::dr::DIRECTOR_IP,
            d = sub.display(),
            vip = lab::dr::VIP,
        ),
    )
    .unwrap();
    let pid = rs.ns.spawn_logged(
        &format!("{} -c {} -v run", bins::lvs_node().display(), cfg.display()),
        &sub.join("agent.log"),
    );
    pid
}

fn settled(lab: &DrLab, port: u16, code: u16) -> String {
    let rs = &lab.reals[0];
    wait_for(Duration::from_secs(15), || {
        let (c, body) = health(&lab.director.ns, rs.ip, port);
        (c == code && !body.contains("pending")).then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "agent on {port} never answered {code}: {:?}",
            health(&lab.director.ns, rs.ip, port)
        )
    })
}

#[test]
fn https_check_verifies_expiry_name_and_client_certificates() {
    let lab = DrLab::one_real("https");
    let dir = TestDir::new(&lab.prefix);
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let p = pki.display();
    for (port, cert, extra) in [
        (9441, "good", ""),
        (9442, "expired", ""),
        (9443, "other", ""),
        (9444, "good", "-Verify 1"),
    ] {
        rs.ns.spawn_logged(
            &format!(
                "openssl s_server -quiet -www -accept 127.0.0.1:{port} -cert {p}/{cert}.pem -key {p}/{cert}.key -CAfile {p}/ca.pem {extra}"
            ),
            &dir.join(&format!("s_server{port}.log")),
        );
    }
    let up = wait_for(Duration::from_secs(5), || {
        rs.ns
            .run("ss -Hltn 'sport >= 9441 and sport <= 9444' | wc -l")
            .stdout
            .starts_with(b"4")
            .then_some(())
    });
    assert!(up.is_some(), "openssl s_server did not listen");

    let ca = format!("ca_file = \"{p}/ca.pem\"\n");
    agent(
        rs,
        &dir.0,
        "good",
        8091,
        &format!("target = \"https://127.0.0.1:9441/\"\n{ca}"),
    );
    agent(
        rs,
        &dir.0,
        "expired",
        8092,
        &format!("target = \"https://127.0.0.1:9442/\"\n{ca}"),
    );
    agent(
        rs,
        &dir.0,
        "name",
        8093,
        &format!("target = \"https://127.0.0.1:9443/\"\n{ca}"),
    );
    agent(
        rs,
        &dir.0,
        "nocert",
        8094,
        &format!("target = \"https://127.0.0.1:9444/\"\n{ca}"),
    );
    agent(
        rs,
        &dir.0,
        "mtls",
        8095,
        &format!(
            "target = \"https://127.0.0.1:9444/\"\n{ca}client_cert = \"{p}/client.pem\"\nclient_key = \"{p}/client.key\"\n"
        ),
    );
    // Without ca_file the system roots do not know the test CA.
    agent(
        rs,
        &dir.0,
        "sysroots",
        8096,
        "target = \"https://127.0.0.1:9441/\"\n",
    );

    let good = settled(&lab, 8091, 200);
    assert!(good.starts_with("state=up"), "{good}");

    let expired = settled(&lab, 8092, 503);
    eprintln!("expired: {expired}");
    assert!(
        expired.contains("reason=\"tls: TLS: certificate expired"),
        "{expired}"
    );

    let name = settled(&lab, 8093, 503);
    eprintln!("wrong name: {name}");
    assert!(
        name.contains("reason=\"tls: TLS: certificate not valid for name"),
        "{name}"
    );
    assert!(name.contains("storage.lab"), "{name}");

    let nocert = settled(&lab, 8094, 503);
    eprintln!("no client certificate: {nocert}");
    assert!(
        nocert.contains("reason=\"tls: TLS: the server requires a client certificate"),
        "{nocert}"
    );

    let mtls = settled(&lab, 8095, 200);
    assert!(mtls.starts_with("state=up"), "{mtls}");

    let sys = settled(&lab, 8096, 503);
    eprintln!("system roots: {sys}");
    assert!(
        sys.contains("reason=\"tls: TLS: certificate issuer unknown"),
        "{sys}"
    );

    // /status carries the check's reason too, as a failing check.
    let status = lab
        .director
        .ns
        .ok(&format!("curl -s -m 2 http://{}:8092/status", rs.ip));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["failing"][0]["name"], "tls", "{status}");
    assert!(
        v["failing"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{status}"
    );
}
