//! lvs-cert without a CA: CSRs checked with openssl, and bad input (exit 2, clear error,
//! no files left behind).

use lab::pebble::TempDir;
use lab::Netns;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn lvs_cert(args: &[&str]) -> Output {
    Command::new(lab::bins::lvs_cert())
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn files(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(d);
    v.sort();
    v
}

fn walk(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

fn openssl(args: &str) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl {args}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl {args}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn request_writes_a_key_and_a_csr_that_openssl_reads() {
    let d = TempDir::new("req");
    let out = d.path().to_str().unwrap();
    let o = lvs_cert(&[
        "request",
        "--vip",
        "gridftp.example.org",
        "--alt",
        "gftp1.example.org",
        "--alt",
        "gftp2.example.org",
        "--out",
        out,
        "--country",
        "US",
        "--state",
        "Nebraska",
        "--locality",
        "Lincoln",
        "--organization",
        "University of Nebraska",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("gridftp.example.org.csr") && stdout.contains("Next:"),
        "{stdout}"
    );
    let key = d.path().join("gridftp.example.org.key");
    let csr = d.path().join("gridftp.example.org.csr");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let t = openssl(&format!(
        "req -in {} -noout -text -verify 2>&1",
        csr.display()
    ));
    assert!(
        t.contains("CN = gridftp.example.org") || t.contains("CN=gridftp.example.org"),
        "{t}"
    );
    assert!(
        t.contains("O = University of Nebraska") || t.contains("O=University of Nebraska"),
        "{t}"
    );
    for n in [
        "gridftp.example.org",
        "gftp1.example.org",
        "gftp2.example.org",
    ] {
        assert!(t.contains(&format!("DNS:{n}")), "{n}: {t}");
    }
    assert!(
        t.contains("verify OK") || t.contains("Certificate request self-signature verify OK"),
        "{t}"
    );
    let a = openssl(&format!("req -in {} -noout -pubkey", csr.display()));
    let b = openssl(&format!("pkey -in {} -pubout", key.display()));
    assert_eq!(a, b);
    // Existing files are never overwritten without --force.
    let o = lvs_cert(&[
        "request",
        "--vip",
        "gridftp.example.org",
        "--alt",
        "gftp1.example.org",
        "--out",
        out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn request_xrootd_from_an_osg_hosts_file() {
    let d = TempDir::new("reqx");
    let hf = d.path().join("load-balanced-hosts.txt");
    std::fs::write(
        &hf,
        "gftp1.example.org gridftp.example.org\ngftp2.example.org gridftp.example.org\n",
    )
    .unwrap();
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = lvs_cert(&[
        "request",
        "--xrootd",
        "--hosts-file",
        hf.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--key-type",
        "ecdsa-p256",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for n in ["gftp1.example.org", "gftp2.example.org"] {
        let t = openssl(&format!("req -in {}/{n}.csr -noout -text", out.display()));
        assert!(
            t.contains(&format!("CN = {n}")) || t.contains(&format!("CN={n}")),
            "{t}"
        );
        assert!(t.contains("DNS:gridftp.example.org"), "{t}");
        let san = t.split("Subject Alternative Name").nth(1).unwrap();
        assert!(
            san.find(n).unwrap() < san.find("gridftp.example.org").unwrap(),
            "node first: {t}"
        );
    }
    assert_eq!(files(&out).len(), 4);
}

#[test]
fn bad_names_duplicates_and_too_many_names_exit_2_and_write_nothing() {
    let d = TempDir::new("bad");
    let out = d.path().to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--vip".into(),
                "grid_ftp.example.org".into(),
                "--alt".into(),
                "a.example.org".into(),
            ],
            "not allowed",
        ),
        (
            vec![
                "--vip".into(),
                "g.example.org".into(),
                "--alt=-a.example.org".into(),
            ],
            "starts or ends",
        ),
        (
            vec![
                "--vip".into(),
                "g.example.org".into(),
                "--alt".into(),
                "a..example.org".into(),
            ],
            "empty label",
        ),
        (
            vec![
                "--vip".into(),
                "g.example.org".into(),
                "--alt".into(),
                "a.example.org".into(),
                "--alt".into(),
                "A.example.org".into(),
            ],
            "twice",
        ),
        (
            {
                let mut v = vec!["--vip".to_string(), "g.example.org".to_string()];
                for i in 0..100 {
                    v.push("--alt".into());
                    v.push(format!("n{i}.example.org"));
                }
                v
            },
            "at most 100",
        ),
    ];
    for (names, want) in &cases {
        for cmd in ["request", "acme"] {
            let mut args: Vec<&str> = vec![cmd];
            args.extend(names.iter().map(|s| s.as_str()));
            let webroot = d.path().join("webroot");
            std::fs::create_dir_all(&webroot).unwrap();
            let state = d.path().join("state");
            let wr = webroot.to_str().unwrap().to_string();
            let st = state.to_str().unwrap().to_string();
            if cmd == "request" {
                args.extend(["--out", out]);
            } else {
                args.extend([
                    "--webroot",
                    &wr,
                    "--state-dir",
                    &st,
                    "--vip-ip",
                    "192.0.2.100",
                ]);
            }
            let o = lvs_cert(&args);
            assert_eq!(o.status.code(), Some(2), "{cmd} {want}: {}", text(&o));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains(want) && err.contains("fix:"), "{cmd}: {err}");
            // Only the (empty) webroot we made ourselves.
            assert_eq!(
                files(d.path()),
                vec![webroot.display().to_string()],
                "{cmd} {want}"
            );
            std::fs::remove_dir_all(&webroot).unwrap();
        }
    }
}

#[test]
fn unwritable_webroot_exits_2_and_leaves_nothing() {
    lab::require_root();
    let d = TempDir::new("ro");
    let webroot = d.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let state = d.path().join("state");
    // Root ignores file modes: a read-only mount in a private mount namespace does not.
    let ns = Netns::new(&lab::netns::unique_prefix("ro"));
    let o = ns.run(&format!(
        "unshare -m sh -c 'mount -t tmpfs -o ro none {wr} && {bin} acme --vip g.example.org --alt a.example.org \
         --webroot {wr} --state-dir {st} --vip-ip 192.0.2.100 --node-ip a.example.org=192.0.2.11'",
        wr = webroot.display(),
        st = state.display(),
        bin = lab::bins::lvs_cert().display()
    ));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--webroot") && err.contains("fix:"), "{err}");
    // Read-only is what ProtectSystem=strict makes of an NFS webroot: the fix names the
    // systemd drop-in.
    assert!(
        err.contains("ReadWritePaths=") && err.contains("systemctl edit lvs-cert-renew"),
        "{err}"
    );
    assert_eq!(files(d.path()), vec![webroot.display().to_string()]);
    assert!(!state.exists());
}

#[test]
fn request_accepts_a_comma_separated_alt_list_and_creates_the_out_dir() {
    let d = TempDir::new("comma");
    // --out does not exist yet, nor does its parent: both are created, the last one 0700.
    let out = d.path().join("new/csrs");
    let o = lvs_cert(&[
        "request",
        "--vip",
        "gridftp.example.org",
        "--alt",
        "gftp1.example.org,gftp2.example.org",
        "--alt",
        "gftp3.example.org",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let t = openssl(&format!(
        "req -in {}/gridftp.example.org.csr -noout -text",
        out.display()
    ));
    for n in [
        "gridftp.example.org",
        "gftp1.example.org",
        "gftp2.example.org",
        "gftp3.example.org",
    ] {
        assert!(t.contains(&format!("DNS:{n}")), "{n}: {t}");
    }
    // A bad name inside a list is still named, and a directory created for a failed run
    // is removed again.
    let out2 = d.path().join("never");
    let o = lvs_cert(&[
        "request",
        "--vip",
        "gridftp.example.org",
        "--alt",
        "gftp1.example.org,bad_name.example.org",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad_name.example.org"));
    assert!(!out2.exists());
}

#[test]
fn renew_on_a_node_with_nothing_configured_is_a_clean_no_op() {
    // The timer runs `lvs-cert renew` on every node the package is installed on, also on
    // nodes that never ran `acme`: that must not fail the unit.
    assert!(
        !Path::new("/etc/lvs-cert/renew.toml").exists(),
        "this host has /etc/lvs-cert/renew.toml: the test needs a host without one"
    );
    let d = TempDir::new("renew0");
    let state = d.path().join("state");
    let o = lvs_cert(&["renew", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("nothing to renew"), "{}", text(&o));
    assert!(files(d.path()).is_empty(), "{:?}", files(d.path()));
    // An explicit --config that does not exist is a mistake, not "nothing configured".
    let missing = d.path().join("renew.toml");
    let o = lvs_cert(&[
        "renew",
        "--state-dir",
        state.to_str().unwrap(),
        "--config",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--config"));
}

#[test]
fn renew_config_errors_name_the_file_and_key() {
    let d = TempDir::new("renewcfg");
    let cfg = d.path().join("renew.toml");
    let state = d.path().join("state");
    for (body, want) in [
        ("webroot = \"/w\"\ndeploy_hok = \"x\"\n", "deploy_hok"),
        ("webroot = 3\n", "webroot"),
        (
            "webroot = \"/w\"\nvip = \"g.example.org\"\nalt = [\"a.example.org\"]\nlock_stale = \"soon\"\n",
            "lock_stale",
        ),
        ("webroot = \"/w\"\nforce = true\n", "force"),
        // The EAB key never sits in the renewal settings (eab_file points to it).
        (
            "webroot = \"/w\"\neab_hmac_key = \"zWNDZM6eQGHWpSRTPal5eIUYFTu7EajV\"\n",
            "eab_hmac_key: the EAB key is not kept in the renewal settings",
        ),
    ] {
        std::fs::write(&cfg, body).unwrap();
        let o = lvs_cert(&[
            "renew",
            "--state-dir",
            state.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{body}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(cfg.to_str().unwrap()) && err.contains(want) && err.contains("fix:"),
            "{body}: {err}"
        );
    }
    assert!(!state.exists());
}

/// A CA (ca.pem) and a leaf for `cn` it signed, in `dir/pub{n}/{fullchain,privkey}.pem`.
fn ca_and_leaf(dir: &Path, n: u32, cn: &str) -> std::path::PathBuf {
    let d = dir.display();
    if !dir.join("ca.pem").exists() {
        openssl(&format!(
            "req -x509 -newkey rsa:2048 -nodes -keyout {d}/ca.key -out {d}/ca.pem -days 2 \
             -subj '/CN=lab test ca' -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null"
        ));
        std::fs::write(
            dir.join("ext"),
            format!("subjectAltName=DNS:{cn}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
    }
    let p = dir.join(format!("pub{n}"));
    std::fs::create_dir_all(&p).unwrap();
    let p_ = p.display();
    openssl(&format!(
        "req -newkey rsa:2048 -nodes -keyout {p_}/privkey.pem -out {p_}/r.csr -subj '/CN={cn}' 2>/dev/null"
    ));
    openssl(&format!(
        "x509 -req -in {p_}/r.csr -CA {d}/ca.pem -CAkey {d}/ca.key -CAcreateserial \
         -out {p_}/fullchain.pem -days 2 -extfile {d}/ext 2>/dev/null"
    ));
    std::fs::remove_file(p.join("r.csr")).unwrap();
    p
}

/// The installed paths are symlinks into a generation directory: Globus's and XRootD's own
/// credential loaders (which check the key's owner and mode) must read them, before and
/// after a switch, and the key keeps its owner.
#[test]
fn installed_pair_loads_in_globus_and_xrootd_credential_tools() {
    use std::os::unix::fs::PermissionsExt;
    lab::require_root();
    let d = TempDir::new("gsi");
    let cert = d.path().join("etc/hostcert.pem");
    let key = d.path().join("etc/hostkey.pem");
    let ca = d.path().join("ca.pem");
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    for n in 0..2 {
        // The second round runs the tools as the pair's owner (grid-proxy-init refuses a
        // cert or key that is not the caller's own), as xrootd reads its pair as xrootd.
        let as_owner = if n == 0 {
            ""
        } else {
            "setpriv --reuid=4321 --regid=4321 --clear-groups "
        };
        let from = ca_and_leaf(d.path(), n, "xrd1.example.org");
        let o = lvs_cert(&[
            "install",
            "--xrootd",
            "--from",
            from.to_str().unwrap(),
            "--name",
            "xrd1.example.org",
            "--issuer-ca",
            ca.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            std::fs::read(from.join("fullchain.pem")).unwrap()
        );
        for tool in [
            format!(
                "{as_owner}grid-proxy-init -cert {c} -key {k} -out {d}/proxy{n}",
                c = cert.display(),
                k = key.display(),
                d = out.display()
            ),
            format!(
                "{as_owner}xrdgsiproxy init -cert {c} -key {k} -out {d}/xproxy{n} -valid 1:00",
                c = cert.display(),
                k = key.display(),
                d = out.display()
            ),
        ] {
            let o = Command::new("sh").arg("-c").arg(&tool).output().unwrap();
            assert!(o.status.success(), "{tool}: {}", text(&o));
        }
        if n == 0 {
            // xrootd's pair: the next install keeps this owner.
            std::os::unix::fs::chown(&key, Some(4321), Some(4321)).unwrap();
            std::os::unix::fs::chown(&cert, Some(4321), Some(4321)).unwrap();
        }
    }
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&key).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (4321, 4321, 0o400));
    assert!(std::fs::symlink_metadata(&key)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Bad external-account-binding flags and files: exit 2 before any request, the error
/// names the flag or file and the fix, the key is never printed, nothing is written.
#[test]
fn bad_eab_flags_and_files_exit_2_name_the_flag_and_write_nothing() {
    const KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let d = TempDir::new("eabin");
    let webroot = d.path().join("webroot");
    let state = d.path().join("state");
    let file = d.path().join("eab.toml");
    let write = |body: &str, mode: u32| {
        std::fs::write(&file, body).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let f = file.to_str().unwrap().to_string();
    let good = format!("kid = \"kid-1\"\nhmac_key = \"{KEY}\"\n");
    // (flags, eab file body and mode, the problem, the fix)
    type Case<'a> = (Vec<&'a str>, Option<(String, u32)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--eab-kid", "kid-1"],
            None,
            "--eab-kid: given without --eab-hmac-key",
            "--eab-hmac-key KEY",
        ),
        (
            vec!["--eab-hmac-key", KEY],
            None,
            "--eab-hmac-key: given without --eab-kid",
            "--eab-kid KID",
        ),
        (
            vec![
                "--eab-kid",
                "kid-1",
                "--eab-hmac-key",
                KEY,
                "--eab-file",
                &f,
            ],
            Some((good.clone(), 0o600)),
            "given together with --eab-kid/--eab-hmac-key",
            "use one",
        ),
        (
            vec!["--eab-kid", "kid-1", "--eab-hmac-key", "not+base64/at=all!"],
            None,
            "--eab-hmac-key: the HMAC key is not base64url",
            "base64url",
        ),
        (
            vec!["--eab-kid", "kid 1", "--eab-hmac-key", KEY],
            None,
            "--eab-kid: the key ID is empty or holds spaces",
            "kid",
        ),
        (
            vec!["--eab-file", &f],
            Some((good.clone(), 0o640)),
            "is readable by group or others (mode 0640)",
            "chmod 600",
        ),
        (
            vec!["--eab-file", &f],
            Some((format!("kid = \"kid-1\"\nhmac = \"{KEY}\"\n"), 0o600)),
            ": hmac: is not an EAB setting",
            "hmac_key = ",
        ),
        (
            vec!["--eab-file", &f],
            Some(("kid = \"kid-1\"\n".into(), 0o600)),
            "has no `hmac_key`",
            "hmac_key = ",
        ),
        (
            vec!["--eab-file", &f],
            Some(("kid = \"kid-1\"\nhmac_key = \"%%%\"\n".into(), 0o600)),
            ": hmac_key: the HMAC key is not base64url",
            "base64url",
        ),
        (
            vec!["--eab-file", &f],
            Some(("kid: kid-1\n".into(), 0o600)),
            "not TOML",
            "kid = ",
        ),
        (
            vec!["--eab-file", "/nonexistent/eab.toml"],
            None,
            "--eab-file /nonexistent/eab.toml: cannot read",
            "mode 0600",
        ),
    ];
    for (flags, body, problem, fix) in cases {
        let _ = std::fs::remove_file(&file);
        if let Some((b, mode)) = &body {
            write(b, *mode);
        }
        let mut args = vec![
            "acme",
            "--vip",
            "g.example.org",
            "--alt",
            "a.example.org",
            "--webroot",
            webroot.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--directory",
            "https://127.0.0.1:9/dir",
            "--vip-ip",
            "192.0.2.100",
            "--node-ip",
            "a.example.org=192.0.2.11",
        ];
        args.extend(&flags);
        let o = lvs_cert(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(problem), "{flags:?}: want `{problem}`: {err}");
        let fix_line = err.split("fix:").nth(1).unwrap_or("");
        assert!(
            fix_line.contains(fix),
            "{flags:?}: fix wants `{fix}`: {err}"
        );
        assert!(!err.contains(KEY), "{flags:?}: the key was printed: {err}");
        let mut left = files(d.path());
        left.retain(|p| p != file.to_str().unwrap());
        assert!(left.is_empty(), "{flags:?}: written: {left:?}");
    }
    assert!(!state.exists());
}
