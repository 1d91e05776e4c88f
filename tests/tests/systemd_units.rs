//! The shipped systemd units: `systemd-analyze verify` passes, lvs-node.service keeps its
//! security exposure at or under 3.0, the settings the agent depends on stay, and the
//! tmpfiles entry creates what it should. Nothing is loaded into, enabled on or started on
//! the host: verify runs against a throwaway root, security reads the file offline.

use lab::units::{exposure, prepare_root, repo, run, stub, verify, TempDir, UNITS};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn unit(name: &str) -> PathBuf {
    repo().join("systemd").join(name)
}

/// A root holding the units where the packages put them, stub binaries for ExecStart=.
fn root_with_units(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    prepare_root(t.path());
    for u in UNITS {
        let dest = t.path().join("usr/lib/systemd/system").join(u);
        std::fs::copy(unit(u), dest).unwrap();
    }
    for b in ["lvs-node", "lvs-cert"] {
        stub(&t.path().join("usr/bin").join(b));
    }
    t
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let root = root_with_units("verify");
    if let Err(e) = verify(root.path()) {
        panic!("{e}");
    }
}

/// The check above must be able to fail: a typo in a key, a missing ExecStart binary.
#[test]
fn verify_catches_a_bad_unit() {
    let root = root_with_units("verify-bad");
    let path = root.path().join("usr/lib/systemd/system/lvs-node.service");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("ProtectHome=yes", "ProtectHom=yes")).unwrap();
    let e = verify(root.path()).expect_err("a misspelt key must fail verify");
    assert!(e.contains("ProtectHom"), "{e}");

    std::fs::write(&path, &good).unwrap();
    std::fs::remove_file(root.path().join("usr/bin/lvs-cert")).unwrap();
    let e = verify(root.path()).expect_err("a missing ExecStart binary must fail verify");
    assert!(e.contains("/usr/bin/lvs-cert"), "{e}");
}

#[test]
fn lvs_node_service_exposure_at_most_3() {
    let score = exposure(&unit("lvs-node.service"));
    eprintln!("systemd-analyze security: lvs-node.service exposure {score}");
    assert!(
        score <= 3.0,
        "lvs-node.service exposure {score} > 3.0: see the hardening table in docs/packaging.md"
    );
    let score = exposure(&unit("lvs-cert-renew.service"));
    eprintln!("systemd-analyze security: lvs-cert-renew.service exposure {score}");
    assert!(
        score <= 3.0,
        "lvs-cert-renew.service exposure {score} > 3.0"
    );
}

/// `Key=value` lines of a unit, in order (a key may repeat).
fn settings(name: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(unit(name))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn has(s: &[(String, String)], key: &str, value: &str) -> bool {
    s.iter().any(|(k, v)| k == key && v == value)
}

/// What the agent and the admins rely on, beyond what verify can know.
#[test]
fn lvs_node_service_keeps_what_the_agent_needs() {
    let s = settings("lvs-node.service");
    for (k, v) in [
        ("Type", "notify"),
        ("ExecStart", "/usr/bin/lvs-node run"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("WatchdogSec", "30s"),
        ("Restart", "on-failure"),
        ("After", "network-online.target"),
        ("Wants", "network-online.target"),
        ("RestartPreventExitStatus", "2 4"),
        ("TimeoutStartSec", "90s"),
        (
            "CapabilityBoundingSet",
            "CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        ),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/lvs-node /run/lvs-node"),
        ("StateDirectory", "lvs-node"),
        ("RuntimeDirectory", "lvs-node"),
        ("RuntimeDirectoryMode", "0700"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ),
    ] {
        assert!(has(&s, k, v), "lvs-node.service lacks {k}={v}");
    }
    // Each would break a feature: /proc/sys/net writes (sysctl ARP method), spawning nft
    // and arptables, or the GridFTP units' ordering (Requires/BindsTo would pull them in).
    for (k, why) in [
        ("ProtectKernelTunables", "makes /proc/sys read-only"),
        ("ProcSubset", "hides /proc/sys"),
        ("NoExecPaths", "nft and arptables must run"),
        (
            "PrivateNetwork",
            "the VIPs live in the host's network namespace",
        ),
        (
            "Requires",
            "GridFTP/XRootD are ordered by their drop-in (after-lvs-node.conf)",
        ),
        (
            "Before",
            "xrootd ships only templates: the drop-in orders every instance",
        ),
    ] {
        assert!(
            !s.iter().any(|(key, _)| key == k),
            "lvs-node.service must not set {k}: {why}"
        );
    }
    let t = settings("lvs-cert-renew.timer");
    for (k, v) in [
        ("OnCalendar", "*-*-* 00,12:00:00"),
        ("RandomizedDelaySec", "1h"),
        ("Persistent", "true"),
    ] {
        assert!(has(&t, k, v), "lvs-cert-renew.timer lacks {k}={v}");
    }
    let c = settings("lvs-cert-renew.service");
    assert!(has(&c, "Type", "oneshot"));
    assert!(has(&c, "ExecStart", "/usr/bin/lvs-cert renew"));
    assert!(has(
        &c,
        "ReadWritePaths",
        "/etc/grid-security /var/lib/lvs-cert"
    ));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn tmpfiles_entry_creates_private_dirs() {
    let root = TempDir::new("tmpfiles");
    // An existing /etc/grid-security keeps its mode ("-" in the entry).
    std::fs::create_dir_all(root.path().join("etc/grid-security")).unwrap();
    std::fs::set_permissions(
        root.path().join("etc/grid-security"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let conf = repo().join("systemd/lvs-node.tmpfiles");
    let out = run(
        "systemd-tmpfiles",
        &[
            &format!("--root={}", root.path().display()),
            "--create",
            conf.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-tmpfiles: {}\n{err}",
        out.status
    );
    for (dir, want) in [
        ("run/lvs-node", 0o700),
        ("var/lib/lvs-node", 0o700),
        ("var/lib/lvs-cert", 0o700),
        ("etc/grid-security", 0o750),
    ] {
        assert_eq!(mode(&root.path().join(dir)), want, "/{dir}");
    }
}

/// The drop-in the packages install for GridFTP and the xrootd@/cmsd@ templates passes
/// `systemd-analyze verify` on a GridFTP unit and on template instances (a drop-in for
/// `xrootd@.service` applies to `xrootd@clustered.service`), with lvs-node.service next to
/// them. The guest boot (tests/tests/boot.rs) checks the resulting dependencies on a
/// running systemd.
#[test]
fn drop_in_verifies_on_gridftp_and_xrootd_instances() {
    let root = root_with_units("dropin");
    let units = root.path().join("usr/lib/systemd/system");
    stub(&root.path().join("usr/bin/systemctl"));
    stub(&root.path().join("usr/bin/service-stand-in"));
    for u in [
        "globus-gridftp-server.service",
        "xrootd@.service",
        "cmsd@.service",
    ] {
        std::fs::write(
            units.join(u),
            "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/usr/bin/service-stand-in\n",
        )
        .unwrap();
        let d = units.join(format!("{u}.d"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(unit("after-lvs-node.conf"), d.join("lvs-node.conf")).unwrap();
    }
    let root_arg = format!("--root={}", root.path().display());
    let out = run(
        "systemd-analyze",
        &[
            "verify",
            "--man=no",
            &root_arg,
            "globus-gridftp-server.service",
            "xrootd@clustered.service",
            "cmsd@clustered.service",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("lvs-node"),
        "systemd-analyze verify with the drop-in ({}):\n{text}",
        out.status
    );
    let d = std::fs::read_to_string(unit("after-lvs-node.conf")).unwrap();
    for line in [
        "After=lvs-node.service",
        "Wants=lvs-node.service",
        "ExecStartPre=+/usr/bin/systemctl is-active --quiet lvs-node.service",
    ] {
        assert!(
            d.lines().any(|l| l == line),
            "after-lvs-node.conf lacks {line}"
        );
    }
    // Requires=/Requisite=/BindsTo= would restart GridFTP with the agent.
    for k in ["Requires=", "Requisite=", "BindsTo=", "PartOf="] {
        assert!(
            !d.lines().any(|l| l.starts_with(k)),
            "after-lvs-node.conf must not set {k}"
        );
    }
}
