//! The .deb and the RPM: built by the documented scripts from the binaries the workspace
//! build made (`--no-build`: no cargo inside `cargo test`), their exact file lists and
//! modes, their metadata, and both installed into a throwaway root with their maintainer
//! scripts (dpkg --root; rpm --root runs the scriptlets chrooted) where the installed
//! `lvs-node --version` runs; the installed units pass `systemd-analyze verify`. Needs root
//! (dpkg --root, rpm --root, mknod), dpkg-dev, rpm and busybox.

use clap::CommandFactory;
use lab::bins;
use lab::units::{prepare_root, repo, run, run_ok, verify, TempDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs packaging/<script> on this test build's profile with the static binaries the
/// packages ship (packaging/build-static.sh, which tests/run.sh runs); returns the package
/// path.
fn build_package(script: &str, out: &Path) -> PathBuf {
    // The scripts read target/<triple>/<profile>/{lvs-node,lvs-cert} and
    // target/debug/xtask; fail loudly if missing.
    bins::bin("xtask");
    for b in ["lvs-node", "lvs-cert"] {
        bins::static_bin(b);
    }
    let target = bins::target_dir();
    let profile = target.file_name().unwrap().to_str().unwrap().to_string();
    let res = Command::new("bash")
        .arg(repo().join("packaging").join(script))
        .args(["--profile", &profile, "--no-build", "--out"])
        .arg(out)
        .env("CARGO_TARGET_DIR", target.parent().unwrap())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "{script} failed ({}):\n{stdout}{}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    // The scripts print the package path as their last line.
    let pkg = PathBuf::from(stdout.lines().last().expect("package path").trim());
    assert!(pkg.is_file(), "{script} printed {}", pkg.display());
    pkg
}

/// Every man page xtask must generate: one per command and visible subcommand.
fn man_pages() -> Vec<String> {
    let mut v = Vec::new();
    for cmd in [lvs_node::cli::Cli::command(), lvs_cert::cli::Cli::command()] {
        let name = cmd.get_name().to_string();
        v.push(format!("{name}.1.gz"));
        for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            v.push(format!("{name}-{}.1.gz", s.get_name()));
        }
    }
    v
}

/// Regular files with their modes, as installed. `zsh` is the distribution's completion dir.
fn expected_files(zsh: &str, deb: bool) -> BTreeMap<String, u32> {
    let mut m: BTreeMap<String, u32> = [
        ("/usr/bin/lvs-node", 0o755),
        ("/usr/bin/lvs-cert", 0o755),
        ("/usr/lib/systemd/system/lvs-node.service", 0o644),
        ("/usr/lib/systemd/system/lvs-cert-renew.service", 0o644),
        ("/usr/lib/systemd/system/lvs-cert-renew.timer", 0o644),
        (
            "/usr/lib/systemd/system/globus-gridftp-server.service.d/lvs-node.conf",
            0o644,
        ),
        (
            "/usr/lib/systemd/system/xrootd@.service.d/lvs-node.conf",
            0o644,
        ),
        (
            "/usr/lib/systemd/system/cmsd@.service.d/lvs-node.conf",
            0o644,
        ),
        ("/usr/lib/tmpfiles.d/lvs-node.conf", 0o644),
        ("/etc/lvs-node/node.toml", 0o644),
        ("/usr/share/doc/lvs-node/packaging.md", 0o644),
        ("/usr/share/doc/lvs-node/monitoring.md", 0o644),
        ("/usr/share/doc/lvs-node/metrics.md", 0o644),
        ("/usr/share/lvs-node/prometheus/lvs-node.rules.yml", 0o644),
        ("/usr/lib/firewalld/services/lvs-node-gridftp.xml", 0o644),
        ("/usr/lib/firewalld/services/lvs-node-report.xml", 0o644),
        ("/usr/share/bash-completion/completions/lvs-node", 0o644),
        ("/usr/share/fish/vendor_completions.d/lvs-node.fish", 0o644),
        ("/usr/share/bash-completion/completions/lvs-cert", 0o644),
        ("/usr/share/fish/vendor_completions.d/lvs-cert.fish", 0o644),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), m))
    .collect();
    m.insert(format!("{zsh}/_lvs-node"), 0o644);
    m.insert(format!("{zsh}/_lvs-cert"), 0o644);
    if deb {
        m.insert("/usr/share/doc/lvs-node/copyright".into(), 0o644);
    }
    for page in man_pages() {
        m.insert(format!("/usr/share/man/man1/{page}"), 0o644);
    }
    m
}

/// Directories whose mode matters.
const PRIVATE_DIRS: [(&str, u32); 3] = [
    ("/var/lib/lvs-node", 0o700),
    ("/var/lib/lvs-cert", 0o700),
    ("/etc/lvs-node", 0o755),
];

/// `drwxr-x---` -> (is_dir, 0o750).
fn parse_mode(s: &str) -> (char, u32) {
    let bits = s[1..10]
        .chars()
        .fold(0u32, |acc, c| (acc << 1) | u32::from(c != '-'));
    (s.chars().next().unwrap(), bits)
}

/// (files, dirs) of a listing whose lines are `MODE ... OWNER ... PATH`.
type Listing = (BTreeMap<String, u32>, BTreeMap<String, u32>);

fn listing(text: &str, owner_ok: impl Fn(&[&str]) -> bool) -> Listing {
    let (mut files, mut dirs) = (BTreeMap::new(), BTreeMap::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(owner_ok(&f), "not owned by root: {line}");
        let (kind, mode) = parse_mode(f[0]);
        let path = f
            .last()
            .unwrap()
            .trim_start_matches('.')
            .trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path }.to_string();
        match kind {
            'd' => dirs.insert(path, mode),
            '-' => files.insert(path, mode),
            _ => panic!("unexpected entry (links and devices are not shipped): {line}"),
        };
    }
    (files, dirs)
}

fn assert_listing(what: &str, (files, dirs): &Listing, expected: &BTreeMap<String, u32>) {
    let show = |m: &BTreeMap<String, u32>| {
        m.iter()
            .map(|(p, m)| format!("  {m:04o} {p}\n"))
            .collect::<String>()
    };
    assert_eq!(
        files,
        expected,
        "{what}: file list or modes differ\n got:\n{}want:\n{}",
        show(files),
        show(expected)
    );
    for (d, want) in PRIVATE_DIRS {
        assert_eq!(dirs.get(d), Some(&want), "{what}: directory {d}");
    }
}

/// Package scripts reload systemd and create directories, but never enable, start or
/// restart a unit (taking VIPs up is the admin's decision).
fn assert_never_starts(what: &str, script: &str) {
    for l in script.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for bad in [
            "systemctl start",
            "systemctl enable",
            "restart",
            "enable --now",
        ] {
            assert!(!l.contains(bad), "{what} must not `{bad}`: {l}");
        }
    }
}

#[test]
fn deb_contents_metadata_and_install_into_a_throwaway_root() {
    let out = TempDir::new("deb");
    let deb = build_package("build-deb.sh", out.path());
    let deb_s = deb.to_str().unwrap();

    // File list and modes; --root-owner-group: all root/root.
    let list = listing(&run_ok("dpkg-deb", &["-c", deb_s]), |f| f[1] == "root/root");
    assert_listing(
        "deb",
        &list,
        &expected_files("/usr/share/zsh/vendor-completions", true),
    );

    // Metadata: no library dependency (static binaries), the conffile, scripts that never
    // start.
    let control = run_ok("dpkg-deb", &["-f", deb_s]);
    for want in [
        "Package: lvs-node",
        "Depends: iproute2\n",
        "nftables | arptables",
    ] {
        assert!(control.contains(want), "control lacks {want}:\n{control}");
    }
    assert!(!control.contains("libc6"), "{control}");
    let ctl = TempDir::new("deb-ctl");
    run_ok("dpkg-deb", &["-e", deb_s, ctl.path().to_str().unwrap()]);
    let conffiles = std::fs::read_to_string(ctl.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/lvs-node/node.toml");
    for s in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(ctl.path().join(s)).unwrap();
        run_ok("sh", &["-n", ctl.path().join(s).to_str().unwrap()]);
        assert_never_starts(s, &text);
    }

    // Install with dpkg into an empty root with its own database. Maintainer scripts run
    // outside a chroot (the root has no shell) with DPKG_ROOT set, which they honour.
    // --force-depends: iproute2 is not in the empty database.
    let root = TempDir::new("deb-root");
    let r = root.path();
    std::fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(r.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    let root_arg = format!("--root={}", r.display());
    let log_arg = format!("--log={}", r.join("dpkg.log").display());
    let dpkg = |args: &[&str]| {
        let mut a = vec![
            root_arg.as_str(),
            log_arg.as_str(),
            "--force-script-chrootless",
        ];
        a.extend_from_slice(args);
        run_ok("dpkg", &a)
    };
    dpkg(&["--force-depends", "-i", deb_s]);

    let version = run_ok(r.join("usr/bin/lvs-node").to_str().unwrap(), &["--version"]);
    assert_eq!(
        version.trim(),
        format!("lvs-node {}", env!("CARGO_PKG_VERSION"))
    );
    // postinst ran systemd-tmpfiles in that root.
    let m = std::fs::metadata(r.join("run/lvs-node")).expect("postinst created /run/lvs-node");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
        0o700
    );
    let status = dpkg(&["-s", "lvs-node"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(status.contains(" /etc/lvs-node/node.toml "), "{status}");

    // The installed man pages are gzip'ed roff; the bash completion parses.
    let page = run_ok(
        "gzip",
        &[
            "-dc",
            r.join("usr/share/man/man1/lvs-node.1.gz").to_str().unwrap(),
        ],
    );
    assert!(page.contains(".TH lvs-node 1 "), "{page}");
    assert!(page.contains(".SH FILES"), "{page}");
    run_ok(
        "bash",
        &[
            "-n",
            r.join("usr/share/bash-completion/completions/lvs-node")
                .to_str()
                .unwrap(),
        ],
    );
    // The firewalld services are well-formed XML (firewalld's own loading is tested in
    // doctor_firewalld.rs) and the alert rules load in promtool, as installed.
    for svc in ["lvs-node-gridftp.xml", "lvs-node-report.xml"] {
        run_ok(
            "xmllint",
            &[
                "--noout",
                r.join("usr/lib/firewalld/services")
                    .join(svc)
                    .to_str()
                    .unwrap(),
            ],
        );
    }
    let rules = run_ok(
        "promtool",
        &[
            "check",
            "rules",
            r.join("usr/share/lvs-node/prometheus/lvs-node.rules.yml")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(rules.contains("SUCCESS"), "{rules}");
    // Every man: reference in the units is a page the package ships.
    for unit in [
        "lvs-node.service",
        "lvs-cert-renew.service",
        "lvs-cert-renew.timer",
    ] {
        let text = std::fs::read_to_string(r.join("usr/lib/systemd/system").join(unit)).unwrap();
        for doc in text.split_whitespace().filter(|w| w.starts_with("man:")) {
            let page = doc.trim_start_matches("man:").replace("(1)", ".1.gz");
            assert!(
                r.join("usr/share/man/man1").join(&page).exists(),
                "{unit} refers to {doc}, not shipped"
            );
        }
    }

    // The units as installed, with the real binaries, pass verify.
    prepare_root(r);
    if let Err(e) = verify(r) {
        panic!("installed units: {e}");
    }

    // Remove keeps the admin's config (a conffile); purge removes it.
    dpkg(&["-r", "lvs-node"]);
    assert!(!r.join("usr/bin/lvs-node").exists());
    assert!(r.join("etc/lvs-node/node.toml").exists());
    dpkg(&["-P", "lvs-node"]);
    assert!(!r.join("etc/lvs-node/node.toml").exists());
}

#[test]
fn rpm_contents_metadata_and_install_into_a_throwaway_root() {
    let out = TempDir::new("rpm");
    let rpm = build_package("build-rpm.sh", out.path());
    let rpm_s = rpm.to_str().unwrap();

    // rpm -qlpv: MODE NLINK USER GROUP SIZE MON DAY TIME PATH
    let text = run_ok("rpm", &["-qlpv", rpm_s]);
    let (files, mut dirs) = listing(&text, |f| f[2] == "root" && f[3] == "root");
    // /run is a tmpfs: the package only claims /run/lvs-node as a %ghost.
    assert_eq!(dirs.remove("/run/lvs-node"), Some(0o700));
    assert_listing(
        "rpm",
        &(files, dirs),
        &expected_files("/usr/share/zsh/site-functions", false),
    );

    assert_eq!(
        run_ok("rpm", &["-qpc", rpm_s]).trim(),
        "/etc/lvs-node/node.toml"
    );
    let requires = run_ok("rpm", &["-qp", "--requires", rpm_s]);
    assert!(
        requires.lines().any(|l| l.trim() == "iproute"),
        "{requires}"
    );
    // Static binaries: rpm finds no library to require, so EL8's glibc 2.28 does not stop
    // the install (a dynamic build from Debian 12 would require libc.so.6(GLIBC_2.34)).
    assert!(
        !requires.contains("libc.so") && !requires.contains("GLIBC_"),
        "{requires}"
    );
    let recommends = run_ok("rpm", &["-qp", "--recommends", rpm_s]);
    assert!(recommends.contains("nftables"), "{recommends}");
    let scripts = run_ok("rpm", &["-qp", "--scripts", rpm_s]);
    assert!(scripts.contains("systemd-tmpfiles --create"), "{scripts}");
    assert_never_starts("rpm scriptlets", &scripts);

    // Install into a throwaway rpm database and root, scriptlets included. rpm runs them
    // chrooted into that root, so it gets a shell (static busybox), the real
    // systemd-tmpfiles with its libraries, /dev/null, root's passwd and group entries, and
    // /proc, and /run/systemd/system, so the scriptlets take their "booted systemd" branch. systemctl
    // there is a stand-in that records its arguments: the real one needs a running systemd,
    // and what matters is what the scriptlets ask of it.
    let root = TempDir::new("rpm-root");
    let r = root.path();
    let root_arg = format!("--root={}", r.display());
    run_ok("rpm", &[&root_arg, "--initdb"]);
    chroot_tools(r);
    // systemd-tmpfiles needs /proc: mounted in a mount namespace of rpm's own, so the
    // mount goes away with it, whatever happens.
    let rpm_in_root = |args: &str| {
        run(
            "unshare",
            &[
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &format!(
                    "mount -t proc proc '{r}/proc' && exec rpm '--root={r}' {args}",
                    r = r.display()
                ),
            ],
        )
    };
    let res = rpm_in_root(&format!("-i --nodeps '{rpm_s}'"));
    assert!(
        res.status.success(),
        "rpm -i: {}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    let version = run_ok(r.join("usr/bin/lvs-node").to_str().unwrap(), &["--version"]);
    assert_eq!(
        version.trim(),
        format!("lvs-node {}", env!("CARGO_PKG_VERSION"))
    );
    // %post ran systemd-tmpfiles in the root (the package only %ghosts /run/lvs-node) and
    // reloaded systemd, starting and enabling nothing.
    let m = std::fs::metadata(r.join("run/lvs-node")).expect("%post created /run/lvs-node");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
        0o700
    );
    let calls = || std::fs::read_to_string(r.join("systemctl.log")).unwrap_or_default();
    assert_eq!(calls(), "daemon-reload\n", "%post");

    // Erase: %preun ($1 = 0) stops and disables both units, %postun reloads.
    let res = rpm_in_root("-e lvs-node");
    assert!(
        res.status.success(),
        "rpm -e: {}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(!r.join("usr/bin/lvs-node").exists());
    assert_eq!(
        calls(),
        "daemon-reload\n\
         --no-reload disable --now lvs-cert-renew.timer lvs-node.service\n\
         daemon-reload\n",
        "%preun and %postun"
    );
}

/// What rpm's chrooted scriptlets need in the throwaway root `r` (see the RPM test).
fn chroot_tools(r: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let copy = |from: &Path, rel: &str| {
        let to = r.join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    };
    copy(Path::new("/usr/bin/busybox"), "bin/sh");
    let tmpfiles = Path::new("/usr/bin/systemd-tmpfiles");
    copy(tmpfiles, "usr/bin/systemd-tmpfiles");
    // Its libraries and the loader, at the paths ldd resolves them to.
    for line in run_ok("ldd", &[tmpfiles.to_str().unwrap()]).lines() {
        let lib = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            copy(Path::new(lib), lib);
        }
    }
    let systemctl = r.join("usr/bin/systemctl");
    std::fs::write(&systemctl, "#!/bin/sh\necho \"$*\" >> /systemctl.log\n").unwrap();
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::create_dir_all(r.join("run/systemd/system")).unwrap();
    std::fs::create_dir_all(r.join("proc")).unwrap();
    std::fs::create_dir_all(r.join("dev")).unwrap();
    run_ok(
        "mknod",
        &[
            "-m",
            "0666",
            r.join("dev/null").to_str().unwrap(),
            "c",
            "1",
            "3",
        ],
    );
}

/// The example config installed as /etc/lvs-node/node.toml must load as it is.
#[test]
fn example_config_loads() {
    let path = repo().join("packaging/node.toml.example");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = lvs_shared::config::NodeConfig::parse(&path, &text)
        .unwrap_or_else(|e| panic!("packaging/node.toml.example: {e}"));
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.vips.len(), 1);
    assert_eq!(c.vips[0].device, "lo");
    assert_eq!(c.vips[0].ports, vec![2811]);
    assert_eq!(c.vips[0].hostname.as_deref(), Some("gridftp.example.org"));
    // The commented IPv6 VIP (from `# [[vip]]` to the blank line) must load too.
    let mut v6 = Vec::new();
    let mut in_block = false;
    for l in text.lines() {
        in_block = (in_block || l == "# [[vip]]") && !l.is_empty();
        v6.push(if in_block {
            l.trim_start_matches("# ")
        } else {
            l
        });
    }
    let v6 = v6.join("\n");
    let c = lvs_shared::config::NodeConfig::parse(&path, &v6)
        .unwrap_or_else(|e| panic!("example with the IPv6 VIP uncommented: {e}\n{v6}"));
    assert_eq!(c.vips.len(), 2, "{v6}");
    // So must the commented `[pool]` and `[bfd]` at the end.
    let (head, tail) = text.split_at(text.find("# [pool]").expect("a commented [pool]"));
    let tail: Vec<&str> = tail.lines().map(|l| l.trim_start_matches("# ")).collect();
    let pool = format!("{head}{}\n", tail.join("\n"));
    let c = lvs_shared::config::NodeConfig::parse(&path, &pool)
        .unwrap_or_else(|e| panic!("example with [pool] and [bfd] uncommented: {e}\n{pool}"));
    assert_eq!(c.daemon.pool.peers.len(), 2, "{pool}");
    assert_eq!(c.bfd.map(|b| b.directors.len()), Some(2), "{pool}");
}
