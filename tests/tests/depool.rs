//! `[pool] depool_threshold` on a REAL LVS director (IPVS and keepalived in a qemu guest,
//! tests/src/vm.rs): a 4-node pool whose `filesystem` check (`shared = true`) watches one
//! file system that all four nodes mount. That file system turns read-only for every node
//! at once (one tmpfs, remounted read-only: what an NFS server that goes read-only does to
//! its clients). Without the threshold every node would leave and the VIP would answer
//! nothing; with `depool_threshold = 0.5` the two first nodes by URL stay in (held), the
//! other two leave, and IPVS never has fewer than two nodes with weight above 0.
//!
//! The same lab checks what the operators see: the log lines, `lvs_realserver_held`,
//! `/status`, `/pool`, `lvs-node pool status` (exit 1 and the serving count, below
//! `[pool] min_serving`) and the Nagios plugin (WARNING below the minimum, CRITICAL with no
//! node serving, which the test gets by draining every node).
//!
//! The one file system: a tmpfs mounted in a mount namespace of its own (held by a `sleep`
//! the client namespace started and kills on drop); every agent runs in that mount
//! namespace (`nsenter -m`) inside its own network namespace, so nothing is mounted on
//! the host.
//!
//! A guest that cannot boot fails the test with the reason and its console (never a skip).

mod daemon_util;

use daemon_util::*;
use lab::dr::{IpvsLab, VIP};
use lab::vm::director::{keepalived_conf, tail, with_probe_path, Real};
use lab::{bins, gridftp, wait_for};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: usize = 4;

fn in_shared_mnt(holder: u32, cmd: &str) -> std::process::Output {
    Command::new("nsenter")
        .arg("-t")
        .arg(holder.to_string())
        .args(["-m", "sh", "-c", cmd])
        .output()
        .unwrap()
}

fn node_config(lab: &IpvsLab, i: usize, dir: &Path, shared: &Path) -> PathBuf {
    let rs = &lab.reals[i];
    let (peers, allow) = pool_lists(&lab.reals);
    let extra = format!(
        "[[check]]\nname = \"nfs\"\nkind = \"filesystem\"\npath = \"{s}\"\nmin_free = \"1%\"\n\
         interval = \"500ms\"\ntimeout = \"400ms\"\nrise = 1\nfall = 1\nshared = true\n\
         [pool]\npeers = [{p}]\ninterval = \"1s\"\ndepool_threshold = 0.5\nmin_serving = 3\n",
        s = shared.display(),
        p = peers,
    );
    let report_extra = format!("allow = [{}]", allow);
    // A loaded machine (the guest runs under TCG) must not fail the GridFTP check by a slow
    // banner: the depool threshold, not GridFTP, is under test.
    let text = node_toml(
        rs,
        dir,
        &NodeOpts {
            report_extra: &report_extra,
            extra: &extra,
            ..NodeOpts::default()
        },
    )
    .replace(
        "interval = \"500ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 1",
        "interval = \"1s\"\ntimeout = \"900ms\"\nrise = 1\nfall = 2",
    );
    assert!(text.contains("fall = 2"), "{text}");
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("node.toml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn director_config(cfg: &Path) -> String {
    let out = Command::new(bins::lvs_node())
        .arg("-c")
        .arg(cfg)
        .arg("director-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "director-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn serving(table: &[lab::vm::director::Service]) -> Vec<String> {
    let mut v: Vec<String> = table
        .iter()
        .flat_map(|s| s.reals.iter())
        .filter(|r| r.weight > 0)
        .map(|r| r.addr.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn a_shared_failure_on_every_node_keeps_half_the_pool_serving_through_ipvs() {
    let lab = IpvsLab::build("depool", NODES)
        .unwrap_or_else(|e| panic!("the real director guest did not come up: {e:#}"));
    let dir = TestDir::new(&lab.prefix);
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    // The one "shared file system" every node mounts.
    let holder = lab.client.ns.spawn(&format!(
        "unshare -m --propagation private sh -c 'mount -t tmpfs -o size=8m tmpfs {s} && exec sleep 3600'",
        s = shared.display()
    ));
    let mounted = wait_for(Duration::from_secs(5), || {
        in_shared_mnt(holder, &format!("mountpoint -q {}", shared.display()))
            .status
            .success()
            .then_some(())
    });
    assert!(mounted.is_some(), "the shared tmpfs did not come up");

    let mut cfgs = Vec::new();
    for (i, rs) in lab.reals.iter().enumerate() {
        let sub = dir.join(&format!("rs{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        gridftp::start(
            &rs.ns,
            rs.ip,
            &format!("rs{i}.lab"),
            &sub.join("gridftp.log"),
        );
        let cfg = node_config(&lab, i, &sub, &shared);
        // The data plane as `lvs-node up` puts it; the agents observe it.
        let up = lvs(&rs.ns, &cfg, "up");
        assert!(
            up.status.success(),
            "lvs-node up: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        rs.ns.spawn_logged(
            &format!(
                "nsenter -t {holder} -m -- {} -c {} -v run",
                bins::lvs_node().display(),
                cfg.display()
            ),
            &sub.join("agent.log"),
        );
        cfgs.push(cfg);
    }
    let log = |i: usize| {
        std::fs::read_to_string(dir.join(&format!("rs{i}/agent.log"))).unwrap_or_default()
    };
    for (i, rs) in lab.reals.iter().enumerate() {
        wait_health(&rs.ns, rs.ip, HTTP_PORT, 200, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("rs{i} not up:\n{}", tail(&log(i), 20)));
    }

    // keepalived with each node's stanza exactly as `director-config` prints it (HTTP_GET
    // on /health, inhibit_on_failure).
    let body: String = cfgs.iter().map(|c| director_config(c)).collect();
    let conf = with_probe_path(
        &keepalived_conf(VIP, 2811, "rr", 1, &body),
        &bins::lvs_node(),
    );
    let d = &lab.director;
    d.load_keepalived(&conf).unwrap_or_else(|e| panic!("{e:#}"));
    let addr = |i: usize| format!("{}:2811", lab.reals[i].ip);
    let all: Vec<String> = (0..NODES).map(addr).collect();
    for a in &all {
        d.wait_real(a, Duration::from_secs(60), |r: Option<&Real>| {
            r.is_some_and(|r| r.weight > 0)
        })
        .unwrap_or_else(|e| panic!("{a} never got a weight: {e}"));
    }
    let pool_status = |i: usize, args: &str| {
        let o = lvs(&lab.reals[i].ns, &cfgs[i], &format!("pool status {args}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!(
            "pool status {args} on rs{i} -> {:?}\n{text}",
            o.status.code()
        );
        (o.status.code().unwrap_or(-1), text)
    };
    let nagios = |i: usize| {
        let o = lvs(&lab.reals[i].ns, &cfgs[i], "nagios");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        eprintln!("nagios on rs{i} -> {:?}\n{text}", o.status.code());
        (o.status.code().unwrap_or(-1), text)
    };
    // Every peer must be seen before the failure (the pool view is what decides).
    let seen = wait_for(Duration::from_secs(20), || {
        let (code, text) = pool_status(0, "");
        (code == 0 && text.contains("SERVING 4 of 4")).then_some(())
    });
    assert!(seen.is_some(), "pool status never showed 4 of 4 serving");
    let (code, text) = nagios(0);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("pool: 4 of 4 node(s) serve"), "{text}");

    // The shared file system turns read-only on every node at once.
    d.start_table_watch(50).unwrap();
    let t0 = Instant::now();
    let ro = in_shared_mnt(holder, &format!("mount -o remount,ro {}", shared.display()));
    assert!(
        ro.status.success(),
        "{}",
        String::from_utf8_lossy(&ro.stderr)
    );

    // IPVS, read every 100 ms for 25 s: never fewer than two nodes with a weight, and it
    // settles on the first two by URL.
    let want: Vec<String> = all[..2].to_vec();
    let mut settled = None;
    let mut fewest = NODES;
    while t0.elapsed() < Duration::from_secs(25) {
        let table = d.watched_table();
        if !table.is_empty() {
            let s = serving(&table);
            fewest = fewest.min(s.len());
            assert!(
                s.len() >= 2,
                "{:?} after the shared failure only {s:?} serve:\n{table:?}\nrs0 log:\n{}",
                t0.elapsed(),
                tail(&log(0), 15)
            );
            if s == want && settled.is_none() {
                settled = Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let settled = settled.unwrap_or_else(|| {
        panic!(
            "IPVS never settled on {want:?}:\n{}\nlogs:\n{}\n{}",
            d.ipvsadm_ln(),
            tail(&log(0), 15),
            tail(&log(3), 15)
        )
    });
    eprintln!(
        "settled on {want:?} {settled:?} after the failure; fewest serving in IPVS: {fewest}"
    );
    assert_eq!(serving(&d.table()), want, "{}", d.ipvsadm_ln());

    // The agents say why: held ones in the log and /metrics, the others out.
    for i in 0..NODES {
        let l = log(i);
        let ip = lab.reals[i].ip;
        let held = metric(&lab.reals[i].ns, ip, "lvs_realserver_held ");
        let shared_failure = metric(&lab.reals[i].ns, ip, "lvs_realserver_shared_failure ");
        assert_eq!(shared_failure, Some(1.0), "rs{i}");
        if i < 2 {
            assert!(
                l.contains("held in: only shared checks fail"),
                "rs{i}:\n{l}"
            );
            // Held from the first moment: never out and back in.
            assert!(!l.contains("node leaves the pool"), "rs{i} flapped:\n{l}");
            assert_eq!(held, Some(1.0), "rs{i}");
            assert_eq!(health(&lab.reals[i].ns, ip, HTTP_PORT).0, 200, "rs{i}");
        } else {
            assert!(
                l.contains("shared check failing, node leaves the pool"),
                "rs{i}:\n{l}"
            );
            assert_eq!(held, Some(0.0), "rs{i}");
            assert_eq!(health(&lab.reals[i].ns, ip, HTTP_PORT).0, 503, "rs{i}");
        }
    }
    let status = lab.reals[3].ns.ok(&format!(
        "curl -s -m 5 http://{}:{HTTP_PORT}/status",
        lab.reals[0].ip
    ));
    let doc: serde_json::Value = serde_json::from_str(&status).expect("/status is JSON");
    assert_eq!(doc["held"], true, "{status}");
    assert_eq!(doc["shared_failure"], true, "{status}");
    assert_eq!(doc["state"], "up", "{status}");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap_or("")
            .contains("Read-only file system"),
        "{status}"
    );
    let page = lab.reals[3].ns.ok(&format!(
        "curl -s -m 5 http://{}:{HTTP_PORT}/pool",
        lab.reals[3].ip
    ));
    assert_eq!(
        page.matches("<span class=\"st st-held\">held</span>")
            .count(),
        2,
        "{page}"
    );
    assert!(page.contains("2 node(s) held in"), "{page}");

    // Clients are still served through the VIP.
    let (file, sum) = gridftp::make_file(&dir.join("data"), "f.bin", 256 << 10);
    for k in 0..2 {
        let out = dir.join(&format!("got{k}.bin"));
        let r = gridftp::url_copy(&lab.client.ns, &VIP.to_string(), &file, &out);
        assert!(
            r.status.success(),
            "globus-url-copy through the VIP during the shared failure: {}\n{}",
            String::from_utf8_lossy(&r.stderr),
            d.ipvsadm_ln()
        );
        assert_eq!(gridftp::sha256(&out), sum);
    }

    // Operators: two of four serve, fewer than [pool] min_serving = 3.
    let (code, text) = pool_status(1, "");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("SERVING 2 of 4 (2 held"), "{text}");
    assert!(
        text.contains("fewer nodes serve than the minimum of 3"),
        "{text}"
    );
    for i in 0..NODES {
        let url = format!("http://{}:{HTTP_PORT}", lab.reals[i].ip);
        let line = text
            .lines()
            .find(|l| l.starts_with(&url))
            .unwrap_or_else(|| panic!("no line for {url}:\n{text}"));
        let st = if i < 2 { "held" } else { "down" };
        assert_eq!(line.split_whitespace().nth(1), Some(st), "{line}");
    }
    // On a held node: its own part and the pool's are WARNING.
    let (code, text) = nagios(1);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("up, held in through a shared failure"),
        "{text}"
    );
    assert!(
        text.contains("pool: 2 of 4 node(s) serve, 2 held in through a shared failure, fewer than the minimum of 3"),
        "{text}"
    );
    // --min-serving 2 is met; the down and held nodes still make it exit 1.
    let (code, text) = pool_status(0, "--min-serving 2");
    assert_eq!(
        code, 1,
        "down and held nodes still fail pool status:\n{text}"
    );
    assert!(!text.contains("fewer nodes serve"), "{text}");

    // The file system comes back: every node serves again.
    let rw = in_shared_mnt(holder, &format!("mount -o remount,rw {}", shared.display()));
    assert!(
        rw.status.success(),
        "{}",
        String::from_utf8_lossy(&rw.stderr)
    );
    let back = wait_for(Duration::from_secs(30), || {
        (serving(&d.table()) == all).then_some(())
    });
    assert!(
        back.is_some(),
        "not every node came back:\n{}",
        d.ipvsadm_ln()
    );
    let back = wait_for(Duration::from_secs(10), || {
        let (code, text) = pool_status(0, "");
        (code == 0 && text.contains("SERVING 4 of 4")).then_some(())
    });
    assert!(back.is_some(), "pool status did not return to 4 of 4");
    for i in 0..NODES {
        assert!(log(i).contains("no shared failure"), "rs{i}:\n{}", log(i));
    }

    // Every node drained: nothing serves. pool status exits 1, nagios is CRITICAL.
    for (rs, cfg) in lab.reals.iter().zip(&cfgs) {
        let o = lvs(&rs.ns, cfg, "drain --reason test");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let none = wait_for(Duration::from_secs(30), || {
        serving(&d.table()).is_empty().then_some(())
    });
    assert!(none.is_some(), "{}", d.ipvsadm_ln());
    let none = wait_for(Duration::from_secs(10), || {
        let (code, text) = pool_status(0, "");
        (text.contains("SERVING 0 of 4")).then_some((code, text))
    });
    let (code, text) = none.expect("pool status never showed 0 of 4 serving");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("no node serves: the VIP answers nothing"),
        "{text}"
    );
    let (code, text) = pool_status(0, "--json");
    assert_eq!(code, 1, "{text}");
    let (code, text) = nagios(0);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.starts_with("LVS-NODE CRITICAL")
            && text.contains("pool: no node of 4 serves, the VIP answers nothing"),
        "{text}"
    );
}
