//! Benchmark (ignored in normal runs; `tests/bench/acme_vs_certbot.sh` runs it): issue for
//! the VIP plus 12 nodes against one Pebble with PEBBLE_VA_NOSLEEP=1, lvs-cert and
//! certbot's webroot mode side by side on the same lab, alternating, several rounds.

use lab::dr::{real_ip, VIP};
use lab::pebble::{node_name, serve_webroot, Pebble, PebbleOpts, TempDir, VIP_HOST};
use lab::{DrLab, LabOpts};
use std::time::{Duration, Instant};

const NODES: usize = 12;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: run tests/bench/acme_vs_certbot.sh"]
fn bench_lvs_cert_vs_certbot_vip_plus_12_nodes() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let lab = DrLab::build(
        "bench",
        LabOpts {
            reals: NODES,
            ipv6: false,
            ports: vec![80],
        },
    );
    // No authorization reuse: every run validates every name, as a first issuance does.
    let pebble = Pebble::start(
        &lab,
        NODES,
        PebbleOpts {
            env: vec![
                ("PEBBLE_AUTHZREUSE".into(), "0".into()),
                // certbot retries a rejected nonce only once; keep the race about speed.
                ("PEBBLE_WFE_NONCEREJECT".into(), "0".into()),
            ],
            ..Default::default()
        },
    );
    let dir = TempDir::new("bench");
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    for r in &lab.reals {
        serve_webroot(r, &webroot);
    }
    let mut names = format!("--vip {VIP_HOST}");
    let mut certbot_names = format!("-d {VIP_HOST}");
    for i in 0..NODES {
        names.push_str(&format!(
            " --alt {n} --node-ip {n}={ip}",
            n = node_name(i),
            ip = real_ip(i)
        ));
        certbot_names.push_str(&format!(" -d {}", node_name(i)));
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let d = dir.path().join(format!("r{round}"));
        let cmd = format!(
            "{bin} acme {names} --webroot {wr} --shared-dir {d}/shared --state-dir {d}/state \
             --directory {url} --root-ca {ca} --cert {d}/cert.pem --key {d}/key.pem --vip-ip {VIP} \
             --key-type ecdsa-p256",
            bin = lab::bins::lvs_cert().display(),
            wr = webroot.display(),
            d = d.display(),
            url = pebble.directory(),
            ca = pebble.tls_ca.display(),
        );
        let verbose = std::env::var_os("BENCH_VERBOSE").is_some();
        let cmd = if verbose { format!("{cmd} -v") } else { cmd };
        let t = Instant::now();
        let out = lab.client.ok(&format!("{cmd} 2>&1"));
        ours.push(t.elapsed());
        if verbose {
            eprintln!("{out}");
        }
        let cmd = format!(
            "REQUESTS_CA_BUNDLE={ca} certbot certonly --non-interactive --agree-tos \
             --register-unsafely-without-email --server {url} --webroot -w {wr} {certbot_names} \
             --cert-name bench --config-dir {d}/cb/conf --work-dir {d}/cb/work --logs-dir {d}/cb/logs",
            ca = pebble.tls_ca.display(),
            url = pebble.directory(),
            wr = webroot.display(),
            d = d.display(),
        );
        let t = Instant::now();
        lab.client.ok(&cmd);
        theirs.push(t.elapsed());
        eprintln!(
            "round {}: lvs-cert {:.2}s  certbot {:.2}s",
            round + 1,
            ours[round].as_secs_f64(),
            theirs[round].as_secs_f64()
        );
    }
    let (a, b) = (median(&mut ours), median(&mut theirs));
    let ratio = a.as_secs_f64() / b.as_secs_f64();
    println!(
        "RESULT VIP+{NODES} nodes, {rounds} rounds, median wall: lvs-cert {:.2}s, certbot {:.2}s, ratio {:.2} (target <= 0.33)",
        a.as_secs_f64(),
        b.as_secs_f64(),
        ratio
    );
    assert!(
        ratio <= 1.0 / 3.0,
        "lvs-cert took {ratio:.2} of certbot's time"
    );
}
