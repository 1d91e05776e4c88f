//! `lvs-node director-config` output is accepted by the real keepalived and HAProxy config
//! checkers (keepalived's checkers cannot run here, but its parser can).

use std::process::Command;

fn node_config(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("node.toml");
    std::fs::write(
        &p,
        "interface = \"eth0\"\nreal_ip = \"192.0.2.11\"\n[[vip]]\naddress = \"192.0.2.100\"\nports = [2811]\n\
         [report]\nhttp = \"192.0.2.11:8080\"\nagent_check = \"192.0.2.11:8081\"\n",
    )
    .unwrap();
    p
}

fn director_config(cfg: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(lab::bins::lvs_node())
        .arg("-c")
        .arg(cfg)
        .arg("director-config")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn snippets_pass_keepalived_and_haproxy_config_checks() {
    let dir = std::env::temp_dir().join(format!("lvs-dircfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = node_config(&dir);
    for args in [&[][..], &["--misc-check"][..]] {
        let rs = director_config(&cfg, args);
        let conf = format!(
            "virtual_server 192.0.2.100 2811 {{\n  delay_loop 2\n  lb_algo wlc\n  lb_kind DR\n  protocol TCP\n{rs}}}\n"
        );
        let f = dir.join("keepalived.conf");
        std::fs::write(&f, &conf).unwrap();
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
        assert!(!err.to_lowercase().contains("unknown keyword"), "{err}");
    }
    let lines = director_config(&cfg, &["--haproxy"]);
    let conf = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         listen gridftp\n  bind 127.0.0.1:12811\n{lines}"
    );
    let f = dir.join("haproxy.cfg");
    std::fs::write(&f, &conf).unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "haproxy -c rejected:\n{conf}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
