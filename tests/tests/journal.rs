//! What the agent's log looks like where it goes: with stderr on a pipe (plain text, no ANSI
//! colour codes), and under a real systemd-journald (Debian's, started in the real server's
//! namespace on a private tmpfs /run and /var/log/journal, with a cgroup2 mount because
//! `ip netns exec` gives the namespace a fresh /sys, with the agent's stderr connected
//! to it as systemd does, `JOURNAL_STREAM` set): native entries with priorities and fields.
//! In both, the first convergence at start-up is INFO and a real repair is WARN, one entry
//! per VIP with its `VIP` field.

mod daemon_util;

use daemon_util::*;
use lab::dr::VIP;
use lab::DrLab;

fn managed_node(tag: &str) -> (DrLab, TestDir, std::path::PathBuf) {
    let lab = DrLab::one_real(tag);
    let dir = TestDir::new(&lab.prefix);
    let cfg = write_config(
        &lab.reals[0],
        &dir.join("rs0"),
        &NodeOpts {
            manage_dataplane: true,
            ..NodeOpts::default()
        },
    );
    (lab, dir, cfg)
}

/// Runs the agent for a few seconds (stopped by SIGTERM), deleting the VIP after 2 s so it
/// repairs once. `wrap` wraps the agent's command line.
fn script(cfg: &std::path::Path, wrap: &str) -> String {
    let agent = format!(
        "timeout -s TERM 5 {} -c {} -v run",
        lab::bins::lvs_node().display(),
        cfg.display()
    );
    format!(
        "(sleep 2; ip addr del {VIP}/32 dev lo) & DEL=$!\n{}\nwait $DEL\n",
        wrap.replace("AGENT", &agent)
    )
}

#[test]
fn stderr_on_a_pipe_is_plain_and_startup_converge_is_info() {
    let (lab, dir, cfg) = managed_node("logpipe");
    let log = dir.join("agent.log");
    let s = script(&cfg, &format!("AGENT 2>&1 | cat > {}", log.display()));
    lab.reals[0].ns.run(&s);
    let text = std::fs::read_to_string(&log).unwrap();
    eprintln!("{text}");
    assert!(
        !text.contains('\x1b'),
        "ANSI escape codes on a pipe:\n{text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let startup = lines
        .iter()
        .find(|l| l.contains("converged the data plane"))
        .unwrap_or_else(|| panic!("no start-up convergence logged:\n{text}"));
    assert!(
        startup.contains(" INFO ") && startup.contains("trigger=\"startup\""),
        "{startup}"
    );
    let repairs: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("repaired the data plane"))
        .collect();
    assert_eq!(repairs.len(), 1, "one repair expected:\n{text}");
    assert!(
        repairs[0].contains(" WARN ")
            && repairs[0].contains(&format!("vip={VIP}"))
            && repairs[0].contains("trigger=\"event\""),
        "{}",
        repairs[0]
    );
    // Nothing else at WARN: the normal start is not a warning.
    assert_eq!(
        lines.iter().filter(|l| l.contains(" WARN ")).count(),
        1,
        "{text}"
    );
}

#[test]
fn under_journald_entries_are_native_with_priority_and_fields() {
    let (lab, dir, cfg) = managed_node("logjrnl");
    let rs = &lab.reals[0];
    let d = dir.0.display();
    // systemd-cat connects stdout and stderr to journald's stream socket, as systemd does for
    // a service; JOURNAL_STREAM is what systemd would set (device:inode of that socket).
    let body = script(
        &cfg,
        "systemd-cat -t lvs-node sh -c 'export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); exec AGENT'",
    );
    let s = format!(
        "set -u\n\
         mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/log/journal\n\
         mkdir -p /run/systemd/journal /run/log/journal\n\
         mount -t cgroup2 cgroup2 /sys/fs/cgroup\n\
         /lib/systemd/systemd-journald >{d}/journald.log 2>&1 & J=$!\n\
         trap 'kill $J; wait $J' EXIT\n\
         for i in $(seq 1 100); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.1; done\n\
         {body}\
         journalctl --directory=/run/log/journal --no-pager -o json SYSLOG_IDENTIFIER=lvs-node > {d}/all.json\n\
         journalctl --directory=/run/log/journal --no-pager -o json VIP={VIP} > {d}/vip.json\n\
         journalctl --directory=/run/log/journal --no-pager SYSLOG_IDENTIFIER=lvs-node\n"
    );
    let out = rs.ns.run(&s);
    eprintln!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |f: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = read("all.json");
    assert!(
        !all.is_empty(),
        "nothing from lvs-node in the journal; journald: {}",
        std::fs::read_to_string(dir.join("journald.log")).unwrap_or_default()
    );
    for e in &all {
        // Native protocol, not the stdout stream: the fields are kept.
        assert_eq!(e["_TRANSPORT"], "journal", "{e}");
        let m = e["MESSAGE"].as_str().unwrap_or_default();
        assert!(!m.contains('\x1b'), "escape codes in {m:?}");
    }
    let startup = all
        .iter()
        .find(|e| e["TRIGGER"] == "startup")
        .expect("start-up convergence in the journal");
    assert_eq!(startup["PRIORITY"], "6", "{startup}");
    assert!(startup["MESSAGE"]
        .as_str()
        .unwrap()
        .starts_with("converged the data plane trigger=startup steps=["));
    // `journalctl VIP=...` finds exactly the repair of that VIP, at WARNING.
    let vip = read("vip.json");
    assert_eq!(vip.len(), 1, "{vip:?}");
    assert_eq!(vip[0]["PRIORITY"], "4");
    assert_eq!(vip[0]["TRIGGER"], "event");
    assert!(vip[0]["MESSAGE"].as_str().unwrap().starts_with(&format!(
        "repaired the data plane trigger=event vip={VIP} steps=["
    )));
    assert_eq!(
        all.iter().filter(|e| e["PRIORITY"] == "4").count(),
        1,
        "only the repair is a warning: {all:?}"
    );
}
