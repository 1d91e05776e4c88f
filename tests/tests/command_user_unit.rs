//! A `command` check with `user` under the shipped lvs-node.service. The unit's
//! capability bounding set (read from systemd/lvs-node.service) and NoNewPrivileges= are
//! reproduced with setpriv; the unit's SystemCallFilter= is NOT reproduced (no seccomp
//! tool here): the missing CAP_SETUID alone makes the switch fail with EPERM.
//!
//! Under the unit's set, the agent refuses such a config at start (exit 2, the key, the
//! reason and the fix), instead of running with a check that can never pass. With the
//! drop-in's capabilities added (CAP_SETUID CAP_SETGID), the check runs as that user.

mod daemon_util;

use daemon_util::*;
use lab::units::repo;
use lab::DrLab;
use std::time::Duration;

/// `-all,+net_admin,...` for setpriv from the unit's CapabilityBoundingSet= lines.
fn unit_bounding_set(extra: &[&str]) -> String {
    let unit = std::fs::read_to_string(repo().join("systemd/lvs-node.service")).unwrap();
    let mut caps: Vec<String> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CapabilityBoundingSet="))
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(!caps.is_empty(), "no CapabilityBoundingSet= in the unit");
    caps.extend(extra.iter().map(|s| s.to_string()));
    let mut arg = String::from("-all");
    for c in caps {
        let c = c.trim_start_matches("CAP_").to_lowercase();
        arg.push_str(&format!(",+{c}"));
    }
    arg
}

fn config(lab: &DrLab, dir: &TestDir, sub: &str) -> std::path::PathBuf {
    let rs = &lab.reals[0];
    let cfg = write_config(rs, &dir.join(sub), &NodeOpts::default());
    // The check: `id -un` must say nobody (exit 0 = up).
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "kind = \"gridftp\"",
        "kind = \"command\"\ncommand = [\"/bin/sh\", \"-c\", \"test $(id -un) = nobody\"]\nuser = \"nobody\"",
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn agent_under(lab: &DrLab, cfg: &std::path::Path, bset: &str, log: &std::path::Path) -> u32 {
    lab.reals[0].ns.spawn_logged(
        &format!(
            "setpriv --bounding-set {bset} --inh-caps -all --no-new-privs -- {} -c {} -v run",
            lab::bins::lvs_node().display(),
            cfg.display()
        ),
        log,
    )
}

#[test]
fn command_check_with_user_under_the_units_capabilities() {
    let lab = DrLab::one_real("cmdu");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);

    // The shipped unit's set: refused at start, with the fix.
    let cfg = config(&lab, &dir, "unit");
    let log = dir.join("unit.log");
    let pid = agent_under(&lab, &cfg, &unit_bounding_set(&[]), &log);
    let code = rs.ns.wait(pid, Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        code,
        Some(2),
        "under the unit's capabilities a check with `user` must be refused at start \
         (exit 2); log: {text}"
    );
    assert!(
        text.contains("user")
            && text.contains("CAP_SETUID")
            && text.contains("SystemCallFilter=@setuid"),
        "the error must name the key, the reason and the drop-in: {text}"
    );

    // With the drop-in's capabilities: the check runs as nobody and the node is up.
    let cfg = config(&lab, &dir, "dropin");
    let log = dir.join("dropin.log");
    let _pid = agent_under(
        &lab,
        &cfg,
        &unit_bounding_set(&["CAP_SETUID", "CAP_SETGID"]),
        &log,
    );
    let up = wait_health(
        &lab.director.ns,
        rs.ip,
        HTTP_PORT,
        200,
        Duration::from_secs(10),
    );
    assert!(
        up.is_some(),
        "with CAP_SETUID and CAP_SETGID the check must run as nobody and pass: {:?} {}",
        health(&lab.director.ns, rs.ip, HTTP_PORT),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
