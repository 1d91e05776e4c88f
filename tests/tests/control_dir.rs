//! The control socket's directory when it already exists: a local user who can write it
//! (group/other-writable, or owned by that user) could replace the socket between two
//! starts and receive the CLI's drain/resume requests. The agent refuses to start with
//! such a directory, names `daemon.control_socket` and the fix, and leaves the directory
//! as it was; a root-owned 0755 directory is accepted and the socket is 0600.

mod daemon_util;

use daemon_util::*;
use lab::DrLab;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

fn refused(lab: &DrLab, dir: &TestDir, sub: &str, mode: u32, owner: u32, why: &str) {
    let rs = &lab.reals[0];
    let d = dir.join(sub);
    let cfg = write_config(rs, &d, &NodeOpts::default());
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(&d, Some(owner), None).unwrap();
    let log = dir.join(&format!("{sub}.log"));
    let pid = rs.ns.spawn_logged(
        &format!(
            "{} -c {} -v run",
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        &log,
    );
    let code = rs.ns.wait(pid, Duration::from_secs(15));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        matches!(code, Some(c) if c != 0),
        "{sub}: the agent must refuse a control socket directory that {why}; exit {code:?}, log: {text}"
    );
    assert!(
        text.contains("daemon.control_socket") && text.contains("fix:") && text.contains(why),
        "{sub}: the error must name the key, the reason ({why}) and the fix: {text}"
    );
    assert!(!d.join("control.sock").exists(), "{sub}: socket created");
    let md = std::fs::metadata(&d).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid()),
        (mode, owner),
        "{sub}: the directory must be left alone"
    );
}

#[test]
fn control_socket_directory_writable_by_others_is_refused() {
    let lab = DrLab::one_real("ctld");
    let dir = TestDir::new(&lab.prefix);
    prepare_real_by_hand(&lab.reals[0]);
    refused(
        &lab,
        &dir,
        "worldw",
        0o777,
        0,
        "writable by group or others",
    );
    refused(
        &lab,
        &dir,
        "sticky",
        0o1777,
        0,
        "writable by group or others",
    );
    refused(
        &lab,
        &dir,
        "groupw",
        0o770,
        0,
        "writable by group or others",
    );
    refused(&lab, &dir, "nobody", 0o700, 65534, "belongs to uid 65534");

    // A root-owned 0755 directory: accepted, socket 0600.
    let rs = &lab.reals[0];
    let d = dir.join("ok");
    let cfg = write_config(rs, &d, &NodeOpts::default());
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "kind = \"gridftp\"",
        &format!("kind = \"tcp\"\ntarget = \"{}:{AGENT_PORT}\"", rs.ip),
    );
    std::fs::write(&cfg, text).unwrap();
    start_agent(rs, &cfg, &dir.join("ok.log"), HTTP_PORT);
    let sock = d.join("control.sock");
    assert!(
        lab::wait_for(Duration::from_secs(5), || sock.exists().then_some(())).is_some(),
        "no control socket in a root-owned 0755 directory"
    );
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o7777, 0o755);
}
