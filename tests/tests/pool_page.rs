//! `GET /pool` in a real browser: three agents in the lab poll each other, one drained, one
//! down with a failing check whose output carries markup; headless Chromium in the director's
//! namespace (in every node's allow list) loads the page from the first node, dumps its DOM
//! and takes a screenshot, kept in target/test-artifacts/pool-page.png.

mod daemon_util;

use daemon_util::*;
use lab::dr::Host;
use lab::{bins, wait_for, DrLab, LabOpts, Netns};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A node whose `disk` check fails, with markup in its output, while `dir/down` exists,
/// polling the whole pool every second (a timeout that a loaded machine running Chromium
/// still meets).
fn node(lab: &DrLab, rs: &Host, dir: &Path, cert: &Path) -> PathBuf {
    pool_node(
        lab,
        rs,
        dir,
        cert,
        ("disk", "<b>scratch</b> full"),
        "interval = \"1s\"\ntimeout = \"800ms\"\nmax_age = \"3s\"",
    )
}

/// `lvs-node run` under its own host name (a UTS namespace), as on separate machines.
fn start_named(rs: &Host, name: &str, cfg: &Path, log: &Path) -> u32 {
    let pid = rs.ns.spawn_logged(
        &format!(
            "unshare -u sh -c 'hostname {name} && exec {} -c {} -v run'",
            bins::lvs_node().display(),
            cfg.display()
        ),
        log,
    );
    let up = wait_for(Duration::from_secs(10), || {
        health(&rs.ns, rs.ip, HTTP_PORT).0.eq(&200).then_some(())
    });
    assert!(
        up.is_some(),
        "agent {name} did not come up: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    pid
}

/// Headless Chromium inside `ns` with a fresh profile; `what` is `--dump-dom` or
/// `--screenshot=FILE`. Returns stdout; fails the test if Chromium fails.
fn chromium(ns: &Netns, profile: &Path, what: &str, url: &str) -> String {
    let _ = std::fs::remove_dir_all(profile);
    std::fs::create_dir_all(profile).unwrap();
    let out = ns.run(&format!(
        "timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
         --disable-background-networking --disable-component-update --disable-sync \
         --disable-dev-shm-usage --user-data-dir={} --window-size=1200,900 {what} {url}",
        profile.display()
    ));
    assert!(
        out.status.success(),
        "chromium {what} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The table row of the node at `ip` in the dumped DOM.
fn row(dom: &str, ip: impl std::fmt::Display) -> &str {
    let key = format!("http://{ip}:{HTTP_PORT}");
    dom.split("<tr>")
        .find(|r| r.contains(&key) && r.contains("<td>"))
        .unwrap_or_else(|| panic!("no row for {key}:\n{dom}"))
}

#[test]
fn pool_page_in_chromium_shows_up_drained_and_down_nodes() {
    let lab = DrLab::build(
        "ppage",
        LabOpts {
            reals: 3,
            ..LabOpts::default()
        },
    );
    let dir = TestDir::new(&lab.prefix);
    let cert = self_signed_cert(&dir, 30);

    let names = ["gftp1.lab", "gftp2.lab", "gftp3.lab"];
    let mut cfgs = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        prepare_real_by_hand(rs);
        let sub = dir.join(&format!("rs{i}"));
        let cfg = node(&lab, rs, &sub, &cert);
        start_named(rs, names[i], &cfg, &sub.join("agent.log"));
        cfgs.push(cfg);
    }
    let (rs0, rs1, rs2) = (&lab.reals[0], &lab.reals[1], &lab.reals[2]);
    // Two established sessions on the first node's GridFTP port (a listener on the VIP).
    rs0.ns.spawn(&format!(
        "socat TCP-LISTEN:2811,bind={},reuseaddr,fork SYSTEM:'sleep 300'",
        lab::dr::VIP
    ));
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..2 {
        rs0.ns.spawn(&format!(
            "socat -u TCP:{}:2811 SYSTEM:'sleep 300'",
            lab::dr::VIP
        ));
    }
    // A few history samples with every node up, then rs1 drained and rs2 failing.
    std::thread::sleep(Duration::from_secs(15));
    assert!(lvs(&rs1.ns, &cfgs[1], "drain --reason kernel-upgrade")
        .status
        .success());
    std::fs::write(dir.join("rs2").join("down"), "").unwrap();
    std::thread::sleep(Duration::from_secs(15));

    // A host outside the allow lists does not get the page (its connection is refused).
    let o = lab
        .client
        .ns
        .run(&format!("curl -s -m 3 http://{}:{HTTP_PORT}/pool", rs0.ip));
    let body = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success() && !body.contains("<html"), "{body}");

    let url = format!("http://{}:{HTTP_PORT}/pool", rs0.ip);
    let profile = dir.join("chromium-profile");
    let dom = wait_for(Duration::from_secs(20), || {
        let d = chromium(&lab.director.ns, &profile, "--dump-dom", &url);
        (d.contains("st-down") && d.contains("st-drain")).then_some(d)
    })
    .unwrap_or_else(|| {
        panic!(
            "the page never showed rs2 down and rs1 drained:\n{}",
            chromium(&lab.director.ns, &profile, "--dump-dom", &url)
        )
    });
    eprintln!("{dom}");
    assert!(dom.contains("Pool: 3 node(s)"), "{dom}");
    let (r0, r1, r2) = (row(&dom, rs0.ip), row(&dom, rs1.ip), row(&dom, rs2.ip));
    // Names, states, admin states and weights.
    assert!(r0.contains(names[0]) && r0.contains("this node"), "{r0}");
    assert!(r0.contains(">up<") && r0.contains(">ready<"), "{r0}");
    // The weight cell whole (">0 / 100<" must not pass for ">100 / 100<").
    assert!(r0.contains(">100 / 100<"), "{r0}");
    assert!(r1.contains(names[1]), "{r1}");
    assert!(
        r1.contains(">drain<") && r1.contains("kernel-upgrade"),
        "{r1}"
    );
    assert!(r1.contains(">0 / 100<"), "{r1}");
    assert!(r2.contains(names[2]), "{r2}");
    assert!(r2.contains(">down<") && r2.contains(">0 / 100<"), "{r2}");
    // The failing check and its reason, as text: its markup is escaped, not rendered.
    assert!(r2.contains("<b>disk</b> (command)"), "{r2}");
    assert!(r2.contains("&lt;b&gt;scratch&lt;/b&gt; full"), "{r2}");
    assert!(
        !dom.contains("<b>scratch</b>"),
        "peer markup rendered:\n{dom}"
    );
    // Sessions and the certificate's expiry.
    assert!(r0.contains("<td class=\"num\">2</td>"), "{r0}");
    assert!(r0.contains("29 d left"), "{r0}");
    // The history graphs, inline.
    assert_eq!(dom.matches("<svg").count(), 3, "{dom}");
    assert!(
        r1.contains("#f5dca0") && r2.contains("#f3b0b0"),
        "no state bands"
    );
    assert!(r0.contains("<polyline"), "{r0}");

    // The screenshot: a real PNG, not a blank page.
    let artifacts = bins::target_dir()
        .parent()
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("pool-page.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        &lab.director.ns,
        &profile,
        &format!("--screenshot={}", png.display()),
        &url,
    );
    let data = std::fs::read(&png).expect("no screenshot written");
    assert!(data.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let (w, h) = (
        u32::from_be_bytes(data[16..20].try_into().unwrap()),
        u32::from_be_bytes(data[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1200, 900), "screenshot size");
    // A blank 1200x900 page compresses to a few kB; text, colours and graphs do not.
    assert!(data.len() > 30_000, "screenshot only {} bytes", data.len());
    eprintln!("screenshot: {} ({} bytes)", png.display(), data.len());
}
