//! The static release binaries (packaging/build-static.sh, what the packages ship): no
//! shared library and no interpreter, so one package runs on EL8, EL9 and EL10 whatever
//! their glibc; and in an otherwise EMPTY root (only the binaries, /etc/hosts,
//! nsswitch.conf, resolv.conf and a CA bundle), chrooted in a private mount and network
//! namespace, names resolve from /etc/hosts and TLS trusts the root's CA bundle: `lvs-cert
//! acme` gets a certificate from real Pebble, whose http-01 fetches `lvs-node
//! serve-challenges` answers from the same root.
//!
//! The binaries come from `packaging/build-static.sh --profile debug` (tests/run.sh runs
//! it): the same flags as the release build, in the dev profile, to keep CI's build short.

use lab::bins::{self, static_bin};
use lab::netns::{host, unique_prefix, wait_for};
use lab::pebble::TempDir;
use lab::Netns;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sh_ok(cmd: &str) -> String {
    let o = host(cmd);
    assert!(o.status.success(), "{cmd}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the dynamic loader would need: NEEDED libraries, an interpreter, glibc versions.
fn dynamic_needs(bin: &Path) -> Vec<String> {
    let b = bin.display();
    let mut needs: Vec<String> = sh_ok(&format!("objdump -p {b}"))
        .lines()
        .filter(|l| l.trim_start().starts_with("NEEDED") || l.trim_start().starts_with("INTERP"))
        .map(|l| l.trim().to_string())
        .collect();
    needs.extend(
        sh_ok(&format!("readelf -lW {b}"))
            .lines()
            .filter(|l| l.contains("Requesting program interpreter"))
            .map(|l| l.trim().to_string()),
    );
    // objdump -T fails on a file without dynamic symbols: that is the static case.
    let t = host(&format!("objdump -T {b}"));
    let mut glibc: Vec<String> = String::from_utf8_lossy(&t.stdout)
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| w.starts_with("GLIBC_2."))
        .map(str::to_string)
        .collect();
    glibc.sort();
    glibc.dedup();
    needs.extend(glibc);
    needs
}

#[test]
fn the_static_binaries_need_no_shared_library_and_no_interpreter() {
    for name in ["lvs-node", "lvs-cert"] {
        let bin = static_bin(name);
        let needs = dynamic_needs(&bin);
        assert!(needs.is_empty(), "{} needs {needs:?}", bin.display());
        let file = sh_ok(&format!("file -b {}", bin.display()));
        assert!(
            file.contains("static-pie linked") || file.contains("statically linked"),
            "{}: {file}",
            bin.display()
        );
    }
    // The same check on the plain (dynamic) build finds what EL8 would lack: the check
    // can fail.
    let dynamic = dynamic_needs(&bins::lvs_node());
    assert!(
        dynamic.iter().any(|n| n.contains("libc.so.6"))
            && dynamic.iter().any(|n| n.starts_with("GLIBC_2.3")),
        "{dynamic:?}"
    );
}

const DOMAIN: &str = "portable.example";

/// An empty root: the two static binaries (debug info stripped), and the four files
/// name resolution and TLS read.
fn empty_root(root: &Path, hosts: &str, ca_bundle: Option<&Path>) {
    for d in ["etc/ssl/certs", "webroot", "shared", "state", "out"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for name in ["lvs-node", "lvs-cert"] {
        let dst = root.join(name);
        if !dst.exists() {
            sh_ok(&format!(
                "strip --strip-debug -o {} {}",
                dst.display(),
                static_bin(name).display()
            ));
        }
    }
    std::fs::write(root.join("etc/hosts"), hosts).unwrap();
    // EL's default (authselect): `myhostname` is a module a static binary cannot load from
    // this root, and must be skipped.
    std::fs::write(
        root.join("etc/nsswitch.conf"),
        "passwd: files\nhosts: files dns myhostname\n",
    )
    .unwrap();
    // Nothing listens there: every name must come from /etc/hosts.
    std::fs::write(root.join("etc/resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    let bundle = root.join("etc/ssl/certs/ca-certificates.crt");
    match ca_bundle {
        Some(ca) => {
            std::fs::copy(ca, &bundle).unwrap();
        }
        None => {
            let _ = std::fs::remove_file(&bundle);
        }
    }
}

/// Runs `cmd` (a path inside the root) chrooted, in a private mount namespace inside the
/// network namespace, with an empty environment.
fn in_root(ns: &Netns, root: &Path, cmd: &str) -> Output {
    ns.run(&format!(
        "env -i /usr/bin/unshare -m /usr/sbin/chroot {} {cmd}",
        root.display()
    ))
}

struct Pebble {
    ns: Netns,
    dir: TempDir,
}

/// Pebble in its own namespace on loopback, resolving every lab name to 127.0.0.1 (http-01
/// on port 80), with a listener certificate for pebble.DOMAIN from a throwaway CA.
fn start_pebble() -> Pebble {
    let ns = Netns::new(&unique_prefix("port"));
    ns.disable_ipv6();
    let dir = TempDir::new("portpeb");
    let d = dir.path();
    let sh = |c: &str| sh_ok(&format!("cd {} && {c}", d.display()));
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=portable lab tls ca' 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout key.pem -out tls.csr -subj '/CN=pebble' 2>/dev/null");
    std::fs::write(
        d.join("ext.cnf"),
        format!("subjectAltName=DNS:pebble.{DOMAIN}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    sh("openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext.cnf 2>/dev/null");
    std::fs::write(
        d.join("pebble.json"),
        format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "{d}/cert.pem", "privateKey": "{d}/key.pem", "httpPort": 80, "tlsPort": 5001,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
            d = d.display()
        ),
    )
    .unwrap();
    ns.write_etc(
        "hosts",
        &format!("127.0.0.1 localhost pebble.{DOMAIN} gridftp.{DOMAIN} node1.{DOMAIN}\n"),
    );
    ns.spawn_logged(
        &format!(
            "env PEBBLE_VA_NOSLEEP=1 pebble -config {}/pebble.json",
            d.display()
        ),
        &d.join("pebble.log"),
    );
    let up = wait_for(Duration::from_secs(60), || {
        ns.run(&format!(
            "curl -sf --cacert {d}/ca.pem --resolve pebble.{DOMAIN}:15000:127.0.0.1 \
             https://pebble.{DOMAIN}:15000/roots/0 -o {d}/issuer-root.pem",
            d = d.display()
        ))
        .status
        .success()
        .then_some(())
    });
    assert!(
        up.is_some(),
        "pebble did not come up: {}",
        std::fs::read_to_string(d.join("pebble.log")).unwrap_or_default()
    );
    Pebble { ns, dir }
}

#[test]
fn in_an_empty_root_the_static_binaries_resolve_names_and_get_a_certificate_over_tls() {
    lab::require_root();
    let peb = start_pebble();
    let ns = &peb.ns;
    let root_dir = TempDir::new("portroot");
    let root = root_dir.path();
    let tls_ca = peb.dir.path().join("ca.pem");
    let all_names =
        format!("127.0.0.1 localhost pebble.{DOMAIN} gridftp.{DOMAIN} node1.{DOMAIN}\n");
    empty_root(root, &all_names, Some(&tls_ca));
    std::fs::copy(
        peb.dir.path().join("issuer-root.pem"),
        root.join("issuer-root.pem"),
    )
    .unwrap();

    // lvs-node from the root answers Pebble's http-01 fetches.
    let responder = ns.spawn(&format!(
        "env -i /usr/bin/unshare -m /usr/sbin/chroot {} /lvs-node serve-challenges --webroot /webroot --listen 127.0.0.1:80",
        root.display()
    ));
    let ok = wait_for(Duration::from_secs(30), || {
        let o = ns.run(
            "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/.well-known/acme-challenge/x",
        );
        (String::from_utf8_lossy(&o.stdout) == "404").then_some(())
    });
    assert!(
        ok.is_some(),
        "lvs-node serve-challenges did not come up in the root"
    );

    // No --root-ca, no --vip-ip/--node-ip: the ACME server's name, the VIP's and the node's
    // come from the root's /etc/hosts, the ACME server's TLS is trusted through the root's
    // CA bundle.
    let acme = format!(
        "/lvs-cert acme --vip gridftp.{DOMAIN} --alt node1.{DOMAIN} --webroot /webroot \
         --shared-dir /shared --state-dir /state --directory https://pebble.{DOMAIN}:14000/dir \
         --issuer-ca /issuer-root.pem --cert /out/hostcert.pem --key /out/hostkey.pem"
    );
    let o = in_root(ns, root, &acme);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("issued"),
        "{}",
        text(&o)
    );
    let sans = sh_ok(&format!(
        "openssl x509 -in {} -noout -ext subjectAltName",
        root.join("out/hostcert.pem").display()
    ));
    assert!(
        sans.contains(&format!("DNS:gridftp.{DOMAIN}"))
            && sans.contains(&format!("DNS:node1.{DOMAIN}")),
        "{sans}"
    );

    // A CA bundle without the server's CA: the same run refuses the server, so the trust
    // came from the root's bundle.
    empty_root(
        root,
        &all_names,
        Some(&peb.dir.path().join("issuer-root.pem")),
    );
    let o = in_root(ns, root, &format!("{acme} --force"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("https://pebble.{DOMAIN}:14000/dir"))
            && err.contains("UnknownIssuer"),
        "{}",
        text(&o)
    );

    // Without the names in /etc/hosts (and no DNS server), nothing resolves: the names
    // came from the root's /etc/hosts.
    empty_root(
        root,
        &format!("127.0.0.1 localhost pebble.{DOMAIN}\n"),
        Some(&tls_ca),
    );
    let o = in_root(ns, root, &format!("{acme} --force"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("cannot resolve `gridftp.{DOMAIN}`")),
        "{}",
        text(&o)
    );
    ns.kill(responder);
}
