//! Uploads that bypass the director: `[[redirect]]` on the VIP answers 307 before the
//! body is sent, the payload goes from the client straight to a node's real IP, and the
//! director carries only the request head.
//!
//! The storage server is a real one (apache2 with mod_dav, tests/src/webdav.rs) and the
//! clients are real: curl and davix-put. Debian 12 packages gfal2 only as a library
//! (no gfal-copy command: gfal2-util is not packaged), so gfal is not exercised.
//!
//! The director here is the nftables MAC-rewrite EMULATION of LVS-DR (tests/src/dr.rs);
//! its byte counter on VIP:8000 plays the part of `ipvsadm -Ln --stats` InBytes.

use lab::dr::{Host, VIP};
use lab::{bins, wait_for, webdav, DrLab, LabOpts};
use std::path::Path;
use std::time::Duration;

#[path = "daemon_util/mod.rs"]
mod util;
use util::TestDir;

const PORT: u16 = 8000;
const DAV_PORT: u16 = 8000;

fn node_config(h: &Host, dir: &Path, redirect: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
         [[vip]]\naddress = \"{VIP}\"\nports = [{PORT}]\n\
         [daemon]\nmanage_dataplane = true\ncontrol_socket = \"{d}/control.sock\"\nrecheck_interval = \"1s\"\n\
         [report]\nhttp = \"{ip}:8080\"\n\
         allow = [\"192.0.2.1\", \"192.0.2.11\", \"192.0.2.12\", \"192.0.2.13\"]\n\
         [[redirect]]\nlisten = \"{VIP}:{PORT}\"\n{redirect}\n",
        ip = h.ip,
        d = dir.display(),
    );
    let p = dir.join("node.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Counts the bytes of every packet to VIP:PORT that reaches the director.
fn count_director_bytes(lab: &DrLab) {
    lab.director.ok(&format!(
        "nft add table netdev lvtcount && \
         nft add chain netdev lvtcount in '{{ type filter hook ingress device \"eth0\" priority -10; policy accept; }}' && \
         nft add rule netdev lvtcount in ip daddr {VIP} tcp dport {PORT} counter"
    ));
}

fn director_bytes(lab: &DrLab) -> u64 {
    let out = lab.director.ok("nft list table netdev lvtcount");
    let i = out.find("bytes ").expect("counter") + 6;
    out[i..].split_whitespace().next().unwrap().parse().unwrap()
}

fn find_upload(davs: &[webdav::Dav], name: &str) -> Option<usize> {
    davs.iter().position(|d| d.data.join(name).exists())
}

#[test]
fn uploads_go_to_the_node_not_through_the_director() {
    let lab = DrLab::build(
        "redir",
        LabOpts {
            reals: 2,
            ports: vec![PORT],
            ..Default::default()
        },
    );
    let t = TestDir::new(&lab.prefix);
    let mut davs = Vec::new();
    for (i, h) in lab.reals.iter().enumerate() {
        let d = t.join(&format!("rs{i}"));
        davs.push(webdav::start(h, &d.join("dav"), DAV_PORT, None));
        let cfg = node_config(h, &d, &format!("target = \"http://{}:{DAV_PORT}\"", h.ip));
        util::start_agent(h, &cfg, &d.join("agent.log"), 8080);
    }
    count_director_bytes(&lab);
    let file = t.join("payload");
    lab.client.ok(&format!(
        "head -c {} /dev/urandom > {}",
        64 << 20,
        file.display()
    ));

    // curl follows the 307 and resends the body to the node.
    let out = lab.client.ok(&format!(
        "curl -sS -L -T {} -o /dev/null -w '%{{http_code}} %{{num_redirects}}' http://{VIP}:{PORT}/c1.bin",
        file.display()
    ));
    assert_eq!(out.trim(), "201 1", "curl upload through the redirect");
    let n = find_upload(&davs, "c1.bin").expect("the upload landed on a node");
    lab.client.ok(&format!(
        "cmp {} {}",
        file.display(),
        davs[n].data.join("c1.bin").display()
    ));
    let after_curl = director_bytes(&lab);
    assert!(
        after_curl < 256 * 1024,
        "{after_curl} bytes crossed the director for a 64 MiB upload"
    );

    // davix-put follows a 307 on PUT the same way.
    lab.client.ok(&format!(
        "davix-put {} http://{VIP}:{PORT}/d1.bin",
        file.display()
    ));
    let n = find_upload(&davs, "d1.bin").expect("davix upload landed on a node");
    lab.client.ok(&format!(
        "cmp {} {}",
        file.display(),
        davs[n].data.join("d1.bin").display()
    ));
    let total = director_bytes(&lab);
    assert!(
        total < 256 * 1024,
        "{total} bytes crossed the director for two 64 MiB uploads"
    );
    eprintln!("director bytes: curl {after_curl}, curl + davix-put {total} (2 x 64 MiB uploaded)");

    // Without following: the redirect comes before any payload, never `100 Continue`,
    // and the Location keeps the path and the query.
    let out = lab.client.ns.run(&format!(
        "curl -sv -T {} -H 'Expect: 100-continue' --max-redirs 0 'http://{VIP}:{PORT}/a/b.bin?x=1&y=2' -o /dev/null",
        file.display()
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("HTTP/1.1 100"),
        "the redirector sent 100 Continue:\n{err}"
    );
    let status_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("< HTTP/")).collect();
    assert_eq!(status_lines.len(), 1, "{err}");
    assert!(status_lines[0].contains(" 307"), "{err}");
    let loc = err
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("< location:"))
        .expect("a Location header");
    assert!(
        loc.ends_with("/a/b.bin?x=1&y=2") && loc.contains(":8000/"),
        "{loc}"
    );

    // Counted in /metrics by target and status.
    let counted = wait_for(Duration::from_secs(2), || {
        let m: String = lab
            .reals
            .iter()
            .map(|h| {
                lab.client
                    .ok(&format!("curl -s -m 2 http://{}:8080/metrics", h.ip))
            })
            .collect();
        m.lines()
            .filter(|l| {
                l.starts_with("lvs_realserver_redirects_total{") && l.contains("status=\"307\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
            .ge(&3)
            .then_some(())
    });
    assert!(counted.is_some(), "redirects not counted in /metrics");
    let _ = bins::lvs_node();
}

/// TLS at the VIP and at the node with one certificate: `lvs-cert acme` issues the shared
/// SAN certificate from Pebble through the VIP (CN = the VIP's name, SANs = the nodes), the
/// redirector serves it on VIP:8443 and apache2 serves the same files on each node's
/// real IP; curl verifies both against Pebble's root while following the 307.
#[test]
fn tls_at_the_vip_with_the_certificate_lvs_cert_issued() {
    use lab::pebble::{node_name, Pebble, PebbleOpts, VIP_HOST};
    const TLS_PORT: u16 = 8443;
    let lab = DrLab::build(
        "redirtls",
        LabOpts {
            reals: 2,
            ports: vec![80, TLS_PORT],
            ..Default::default()
        },
    );
    let pebble = Pebble::start(&lab, 2, PebbleOpts::default());
    let t = TestDir::new(&lab.prefix);
    let (cert, key) = lab::pebble::issue_shared(&lab, &pebble, &t.0);
    lab::pebble::write_hosts(&lab, 2);

    let mut davs = Vec::new();
    for (i, h) in lab.reals.iter().enumerate() {
        let d = t.join(&format!("rs{i}"));
        davs.push(webdav::start(
            h,
            &d.join("dav"),
            TLS_PORT,
            Some((&cert, &key)),
        ));
        std::fs::create_dir_all(&d).unwrap();
        let cfg = d.join("node.toml");
        std::fs::write(
            &cfg,
            format!(
                "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
                 [[vip]]\naddress = \"{VIP}\"\nports = [{TLS_PORT}]\n\
                 [daemon]\nmanage_dataplane = false\ncontrol_socket = \"{d}/control.sock\"\n\
                 [report]\nhttp = \"{ip}:8080\"\n\
                 [[redirect]]\nlisten = \"{VIP}:{TLS_PORT}\"\ntls_cert = \"{c}\"\ntls_key = \"{k}\"\n\
                 target = \"https://{n}:{TLS_PORT}\"\n",
                ip = h.ip,
                d = d.display(),
                c = cert.display(),
                k = key.display(),
                n = node_name(i),
            ),
        )
        .unwrap();
        util::start_agent(h, &cfg, &d.join("agent.log"), 8080);
    }
    let file = t.join("payload");
    lab.client.ok(&format!(
        "head -c {} /dev/urandom > {}",
        4 << 20,
        file.display()
    ));
    // Pebble's root signed the certificate; curl trusts nothing else.
    let root = pebble.issuer_root.display().to_string();
    let out = lab.client.ok(&format!(
        "curl -sS --cacert {root} -L -T {} -o /dev/null -w '%{{http_code}} %{{num_redirects}} %{{url_effective}}' https://{VIP_HOST}:{TLS_PORT}/tls.bin",
        file.display()
    ));
    let mut w = out.split_whitespace();
    assert_eq!(w.next(), Some("201"), "{out}");
    assert_eq!(w.next(), Some("1"), "{out}");
    let effective = w.next().unwrap_or_default();
    assert!(
        effective.starts_with("https://gftp")
            && effective.ends_with(&format!(":{TLS_PORT}/tls.bin")),
        "{out}"
    );
    let n = find_upload(&davs, "tls.bin").expect("the TLS upload landed on a node");
    lab.client.ok(&format!(
        "cmp {} {}",
        file.display(),
        davs[n].data.join("tls.bin").display()
    ));
    // A name the certificate does not cover fails verification at the VIP.
    let bad = lab.client.ns.run(&format!(
        "curl -sS --cacert {root} --resolve other.lab.example:{TLS_PORT}:{VIP} https://other.lab.example:{TLS_PORT}/x -o /dev/null"
    ));
    assert!(!bad.status.success(), "a wrong name must not verify");
}

/// `choose = "pool"`: every node redirects to a healthy node of `[pool] peers`, weighted by
/// the weight it reports; a drained node is never chosen; with every node down the answer
/// is 503 with Retry-After.
#[test]
fn pool_choice_skips_drained_and_down_nodes() {
    let lab = DrLab::build(
        "redirpool",
        LabOpts {
            reals: 3,
            ports: vec![PORT],
            ..Default::default()
        },
    );
    let t = TestDir::new(&lab.prefix);
    let peers: Vec<String> = lab
        .reals
        .iter()
        .map(|h| format!("\"http://{}:8080\"", h.ip))
        .collect();
    let mut davs = Vec::new();
    let mut cfgs = Vec::new();
    for (i, h) in lab.reals.iter().enumerate() {
        let d = t.join(&format!("rs{i}"));
        davs.push(webdav::start(h, &d.join("dav"), DAV_PORT, None));
        // The node is up while its WebDAV server answers.
        let cfg = node_config(
            h,
            &d,
            &format!(
                "target = \"http://{ip}:{DAV_PORT}\"\nchoose = \"pool\"\n\
                 [pool]\npeers = [{p}]\ninterval = \"1s\"\ntimeout = \"800ms\"\n\
                 [[check]]\nname = \"webdav\"\nkind = \"tcp\"\ntarget = \"{ip}:{DAV_PORT}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n",
                ip = h.ip,
                p = peers.join(", ")
            ),
        );
        util::start_agent(h, &cfg, &d.join("agent.log"), 8080);
        cfgs.push(cfg);
    }
    // Where n requests to the VIP are sent, by node index; None if any got a 503.
    let spread = |n: usize| -> Option<Vec<usize>> {
        let mut per = vec![0; lab.reals.len()];
        for k in 0..n {
            let loc = lab.client.ok(&format!(
                "curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' -X PUT -H 'Content-Length: 0' http://{VIP}:{PORT}/p{k}"
            ));
            let (code, url) = loc.split_once(' ').unwrap_or((&loc, ""));
            if code == "503" {
                return None;
            }
            assert_eq!(code, "307", "{loc}");
            let i = lab
                .reals
                .iter()
                .position(|h| url.starts_with(&format!("http://{}:{DAV_PORT}/", h.ip)))
                .unwrap_or_else(|| panic!("unknown target {url}"));
            per[i] += 1;
        }
        Some(per)
    };
    // Every node sees the whole pool up before anything is asked.
    let all_up = wait_for(Duration::from_secs(30), || {
        spread(15).filter(|p| p.iter().all(|&n| n > 0))
    });
    assert!(
        all_up.is_some(),
        "all three nodes should be chosen; node 0 log:\n{}",
        std::fs::read_to_string(t.join("rs0/agent.log")).unwrap_or_default()
    );

    // Drain node 2: no request goes to it (once every poller has seen it).
    let o = util::lvs(&lab.reals[2].ns, &cfgs[2], "drain --reason test");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(3500));
    let p = spread(40).expect("two nodes are up: no 503");
    assert_eq!(p[2], 0, "a drained node was chosen: {p:?}");
    assert!(p[0] > 0 && p[1] > 0, "{p:?}");

    // Node 2 back, node 1's WebDAV server stopped: one down node among up ones is never
    // chosen, and the two others share the requests.
    let o = util::lvs(&lab.reals[2].ns, &cfgs[2], "resume");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stop_dav = |i: usize| {
        // SIGTERM to apache's parent stops its workers too (they hold the listener).
        let pidfile = davs[i].data.parent().unwrap().join("run/httpd.pid");
        lab.reals[i].ok(&format!("kill -TERM $(cat {})", pidfile.display()));
    };
    stop_dav(1);
    let down = wait_for(Duration::from_secs(5), || {
        let (code, body) = util::health(&lab.reals[1].ns, lab.reals[1].ip, 8080);
        (code == 503).then_some(body)
    });
    assert!(
        down.is_some(),
        "node 1 did not turn down without its WebDAV server"
    );
    std::thread::sleep(Duration::from_millis(3500));
    let p = spread(40).expect("two nodes are up: no 503");
    assert_eq!(p[1], 0, "a down node was chosen: {p:?}");
    assert!(p[0] > 0 && p[2] > 0, "{p:?}");

    // Every WebDAV server stopped: every node down, 503 with Retry-After.
    stop_dav(0);
    stop_dav(2);
    let unavailable = wait_for(Duration::from_secs(20), || {
        let out = lab.client.ok(&format!(
            "curl -s -D - -o /dev/null -X PUT -H 'Content-Length: 0' http://{VIP}:{PORT}/none"
        ));
        (out.starts_with("HTTP/1.1 503") && out.to_ascii_lowercase().contains("retry-after: "))
            .then_some(out)
    });
    assert!(
        unavailable.is_some(),
        "no node up must give 503 with Retry-After"
    );
}
