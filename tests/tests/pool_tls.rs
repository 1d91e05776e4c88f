//! Pool reads over TLS with real agents in the lab and certificates made here with openssl:
//! `[report] https` with the host certificate, `[pool] ca/cert/key`, `client_ca` and
//! `allow_clients`, `pool status --ca/--cert/--key` and `director-config --pool` with them.
//!
//! - The poller, `pool status` and `director-config --pool` read every node over TLS.
//! - A spoofer that takes over a peer's address (another namespace, the peer's IP, a real
//!   lvs-node serving a valid /status) is refused, first with a certificate for the right
//!   name from another CA, then with one from the right CA for another name: the peer shows
//!   as unreachable with the TLS reason, and director-config prints nothing.
//! - With `client_ca`, a client in `report.allow` gets no /status without an allowed client
//!   certificate (none, another CA's, a name not in allow_clients); /health stays open; the
//!   gate's per-source cap applies before the handshake.
//! - Bad TLS files stop `run`, `pool status` and `director-config` with exit 2 naming the key
//!   or flag and the fix.

mod daemon_util;

use daemon_util::*;
use lab::dr::{CLIENT_IP, DIRECTOR_IP, VIP};
use lab::{bins, wait_for, DrLab, LabOpts, Netns};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const HTTPS_PORT: u16 = 8443;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A certificate and its key (mode 0600).
#[derive(Clone)]
struct Cert {
    cert: PathBuf,
    key: PathBuf,
}

/// A CA made here: `dir/{tag}.pem` and its key.
fn make_ca(dir: &Path, tag: &str) -> Cert {
    let c = Cert {
        cert: dir.join(format!("{tag}.pem")),
        key: dir.join(format!("{tag}.key")),
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN=Lab {tag}"),
        "-keyout",
        s(&c.key),
        "-out",
        s(&c.cert),
    ]);
    c
}

static SERIAL: AtomicU32 = AtomicU32::new(1);

/// A host certificate for `name` (CN and DNS SAN, serverAuth and clientAuth, as grid host
/// certificates) signed by `ca`, written as `dir/{tag}.pem` and `dir/{tag}.key`.
fn make_leaf(dir: &Path, ca: &Cert, name: &str, tag: &str) -> Cert {
    let c = Cert {
        cert: dir.join(format!("{tag}.pem")),
        key: dir.join(format!("{tag}.key")),
    };
    let csr = dir.join(format!("{tag}.csr"));
    let ext = dir.join(format!("{tag}.ext"));
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{name}\n"
        ),
    )
    .unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        s(&c.key),
        "-out",
        s(&csr),
    ]);
    let serial = format!(
        "0x{:x}{:04x}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::SeqCst)
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr),
        "-CA",
        s(&ca.cert),
        "-CAkey",
        s(&ca.key),
        "-set_serial",
        &serial,
        "-days",
        "2",
        "-extfile",
        s(&ext),
        "-out",
        s(&c.cert),
    ]);
    std::fs::set_permissions(&c.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    c
}

/// Every namespace resolves the nodes' names (as DNS would on a site).
fn hosts(nss: &[&Netns]) {
    let t = "127.0.0.1 localhost\n192.0.2.11 rs0.lab\n192.0.2.12 rs1.lab\n";
    for ns in nss {
        ns.write_etc("hosts", t);
    }
}

struct TlsNode<'a> {
    /// The address the agent binds (a spoofer binds a peer's).
    ip: std::net::Ipv4Addr,
    /// Its name among the peers, e.g. `rs0.lab`.
    name: &'a str,
    cert: &'a Cert,
    ca: &'a Path,
    allow_clients: &'a [&'a str],
    /// Extra lines in [report].
    report_extra: &'a str,
}

/// An agent serving `[report] https` with `n.cert`, asking for client certificates from
/// `n.ca`, polling both lab nodes over TLS with its own certificate.
fn tls_node(dir: &Path, n: &TlsNode) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("node.toml");
    let allow = [DIRECTOR_IP, CLIENT_IP, real(0), real(1)]
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let clients = n
        .allow_clients
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{VIP}\"\nports = [2811]\n\
             [daemon]\nmanage_dataplane = false\ncontrol_socket = \"{d}/control.sock\"\n\
             [report]\nhttp = \"{ip}:{HTTP_PORT}\"\nhttps = \"{ip}:{HTTPS_PORT}\"\n\
             tls_cert = \"{c}\"\ntls_key = \"{k}\"\nclient_ca = \"{ca}\"\nallow_clients = [{clients}]\n\
             allow = [{allow}]\n{extra}\n\
             [[check]]\nname = \"flag\"\nkind = \"command\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1\n\
             command = [\"/bin/true\"]\n\
             [pool]\npeers = [\"https://rs0.lab:{HTTPS_PORT}\", \"https://rs1.lab:{HTTPS_PORT}\"]\n\
             self = \"https://{name}:{HTTPS_PORT}\"\nca = \"{ca}\"\ncert = \"{c}\"\nkey = \"{k}\"\n\
             interval = \"300ms\"\ntimeout = \"250ms\"\nmax_age = \"1s\"\n",
            ip = n.ip,
            d = dir.display(),
            c = n.cert.cert.display(),
            k = n.cert.key.display(),
            ca = n.ca.display(),
            name = n.name,
            extra = n.report_extra,
        ),
    )
    .unwrap();
    cfg
}

fn real(i: usize) -> std::net::Ipv4Addr {
    lab::dr::real_ip(i)
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `lvs-node ARGS` in `ns` without a config file.
fn lvs_bare(ns: &Netns, args: &str) -> (i32, String, String) {
    text(&ns.run(&format!(
        "{} -c /nonexistent {args}",
        bins::lvs_node().display()
    )))
}

fn line_for<'a>(out: &'a str, name: &str) -> &'a str {
    let key = format!("https://{name}:{HTTPS_PORT} ");
    out.lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
}

fn state_of<'a>(out: &'a str, name: &str) -> &'a str {
    line_for(out, name).split_whitespace().nth(1).unwrap_or("")
}

/// The agent's log without terminal colour codes.
fn log_text(p: &Path) -> String {
    let raw = std::fs::read_to_string(p).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            for d in it.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn pool_reads_over_tls_refuse_a_spoofed_peer() {
    let lab = DrLab::build(
        "pooltls",
        LabOpts {
            reals: 2,
            ..LabOpts::default()
        },
    );
    let (rs0, rs1) = (&lab.reals[0], &lab.reals[1]);
    hosts(&[&rs0.ns, &rs1.ns, &lab.client.ns, &lab.director.ns]);
    let dir = TestDir::new(&lab.prefix);
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca_a = make_ca(&pki, "ca-a");
    let ca_b = make_ca(&pki, "ca-b");
    let c0 = make_leaf(&pki, &ca_a, "rs0.lab", "rs0");
    let c1 = make_leaf(&pki, &ca_a, "rs1.lab", "rs1");
    let director = make_leaf(&pki, &ca_a, "director.lab", "director");
    // The spoofer's certificates: the right name from another CA, the right CA for
    // another name.
    let forged = make_leaf(&pki, &ca_b, "rs1.lab", "forged-rs1");
    let wrong_name = make_leaf(&pki, &ca_a, "evil.lab", "evil");
    let clients = ["rs0.lab", "rs1.lab", "director.lab", "evil.lab"];

    let mut cfgs = Vec::new();
    let mut pids = Vec::new();
    for (i, (rs, c)) in [(rs0, &c0), (rs1, &c1)].into_iter().enumerate() {
        prepare_real_by_hand(rs);
        let sub = dir.join(&format!("rs{i}"));
        let name = format!("rs{i}.lab");
        let cfg = tls_node(
            &sub,
            &TlsNode {
                ip: rs.ip,
                name: &name,
                cert: c,
                ca: &ca_a.cert,
                allow_clients: &clients,
                report_extra: "",
            },
        );
        pids.push(start_agent(rs, &cfg, &sub.join("agent.log"), HTTP_PORT));
        cfgs.push(cfg);
    }

    // Both nodes up over TLS: `pool status` on rs0 from [pool] (rs0 is read from its own
    // state, rs1 over https with rs0's certificate).
    let (code, out, err) = wait_for(Duration::from_secs(10), || {
        let r = text(&lvs(&rs0.ns, &cfgs[0], "pool status"));
        (r.0 == 0).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "pool never all up over TLS: {:?}\n{}",
            text(&lvs(&rs0.ns, &cfgs[0], "pool status")),
            log_text(&dir.join("rs1").join("agent.log"))
        )
    });
    eprintln!("{out}{err}");
    // The header, two nodes and the serving count.
    assert_eq!(out.lines().count(), 4, "{out}");
    assert_eq!(state_of(&out, "rs0.lab"), "up", "{out}");
    assert_eq!(state_of(&out, "rs1.lab"), "up", "{out}");

    // The running poller on rs0 sees rs1 up over TLS.
    let log0 = dir.join("rs0").join("agent.log");
    let peer_log = |state: &str| {
        let want = format!("https://rs1.lab:{HTTPS_PORT}");
        let state = format!("state={state}");
        wait_for(Duration::from_secs(5), || {
            log_text(&log0)
                .lines()
                .find(|l| l.contains("pool peer state") && l.contains(&want) && l.contains(&state))
                .map(str::to_string)
        })
    };
    assert!(peer_log("up").is_some(), "{}", log_text(&log0));

    // director-config --pool over TLS with the director's certificate.
    let dc = |extra: &str| {
        lvs_bare(
            &lab.director.ns,
            &format!(
                "director-config --pool https://rs0.lab:{HTTPS_PORT} --pool https://rs1.lab:{HTTPS_PORT} \
                 --ca {} --cert {} --key {} {extra}",
                ca_a.cert.display(),
                director.cert.display(),
                director.key.display()
            ),
        )
    };
    let (code_dc, conf, err) = dc("");
    assert_eq!(code_dc, 0, "{err}");
    assert!(
        conf.contains(&rs0.ip.to_string()) && conf.contains(&rs1.ip.to_string()),
        "{conf}"
    );
    assert_eq!(code, 0);

    // The spoofer: another namespace (the client's) takes over rs1's address on the LAN and
    // runs a real lvs-node there, first with rs1's name from another CA. It would accept
    // rs0's and the director's client certificates and serve a valid /status.
    let spoof = |cert: &Cert, tag: &str, marker: &str| -> u32 {
        let sub = dir.join(tag);
        let cfg = tls_node(
            &sub,
            &TlsNode {
                ip: rs1.ip,
                name: "rs1.lab",
                cert,
                ca: &ca_a.cert,
                allow_clients: &clients,
                report_extra: "",
            },
        );
        // A spoofer before this one is gone, its listeners with it.
        let free = wait_for(Duration::from_secs(5), || {
            let o = lab.client.ns.run(&format!(
                "ss -Htlnp '( sport = :{HTTP_PORT} or sport = :{HTTPS_PORT} )'"
            ));
            o.stdout.is_empty().then_some(())
        });
        assert!(
            free.is_some(),
            "the ports are still held: {}",
            String::from_utf8_lossy(&lab.client.ns.run("ss -Htlnp").stdout)
        );
        let pid = lab.client.ns.spawn_logged(
            &format!("{} -c {} -v run", bins::lvs_node().display(), cfg.display()),
            &sub.join("agent.log"),
        );
        if tag == "spoof-ca" {
            // rs1 loses its address to the spoofer; rs0 and the director re-resolve it.
            wait_for(Duration::from_secs(10), || {
                lab.client
                    .ns
                    .run(&format!("ss -Htln 'sport = :{HTTPS_PORT}'"))
                    .stdout
                    .is_empty()
                    .then_some(())
                    .xor(Some(()))
            })
            .unwrap_or_else(|| {
                panic!(
                    "the spoofer never listened: {}",
                    log_text(&sub.join("agent.log"))
                )
            });
            rs1.ok(&format!("ip addr del {}/24 dev eth0", rs1.ip));
            for ns in [&rs0.ns, &lab.director.ns] {
                ns.ok("ip neigh flush dev eth0");
            }
        }
        // rs0 now reaches the spoofer at rs1's name and address (certificate unchecked).
        let seen = wait_for(Duration::from_secs(10), || {
            let o = rs0.ns.run(&format!(
                "curl -vsk -o /dev/null -m 1 https://rs1.lab:{HTTPS_PORT}/health"
            ));
            String::from_utf8_lossy(&o.stderr)
                .contains(marker)
                .then_some(())
        });
        assert!(
            seen.is_some(),
            "the spoofer does not answer: {}",
            log_text(&sub.join("agent.log"))
        );
        pid
    };
    lab.client
        .ns
        .ok(&format!("ip addr add {}/24 dev eth0", rs1.ip));
    let spoofer = spoof(&forged, "spoof-ca", "CN=Lab ca-b");

    // The running poller on rs0 refuses it: its /pool page (read with the director's
    // certificate) shows the reason, and the log the change of state.
    let pool_page_shows = |what: &str| {
        wait_for(Duration::from_secs(5), || {
            let o = lab.director.ns.run(&format!(
                "curl -s -m 3 --cacert {} --cert {} --key {} https://rs0.lab:{HTTPS_PORT}/pool",
                ca_a.cert.display(),
                director.cert.display(),
                director.key.display()
            ));
            String::from_utf8_lossy(&o.stdout)
                .contains(what)
                .then_some(())
        })
        .is_some()
    };
    assert!(
        pool_page_shows("certificate issuer unknown"),
        "rs0's /pool never showed the spoofer refused"
    );
    assert!(peer_log("unreachable").is_some(), "{}", log_text(&log0));
    // pool status and director-config refuse it too.
    let (code, out, _) = text(&lvs(&rs0.ns, &cfgs[0], "pool status"));
    eprintln!("{out}");
    assert_eq!(code, 1, "{out}");
    assert_eq!(state_of(&out, "rs1.lab"), "unreachable", "{out}");
    assert!(
        line_for(&out, "rs1.lab").contains("issuer unknown"),
        "{out}"
    );
    let (code_dc, conf, err) = dc("");
    assert_eq!((code_dc, conf.as_str()), (1, ""), "{err}");
    assert!(
        err.contains(&format!("https://rs1.lab:{HTTPS_PORT}")) && err.contains("issuer unknown"),
        "{err}"
    );

    // The right CA, another name.
    lab.client.ns.kill(spoofer);
    let _spoofer = spoof(&wrong_name, "spoof-name", "CN=evil.lab");
    let (code, out, _) = text(&lvs(&rs0.ns, &cfgs[0], "pool status"));
    eprintln!("{out}");
    assert_eq!(code, 1, "{out}");
    assert_eq!(state_of(&out, "rs1.lab"), "unreachable", "{out}");
    assert!(
        line_for(&out, "rs1.lab").contains("not valid for name rs1.lab"),
        "{out}"
    );
    let (code_dc, _, err) = dc("");
    assert_eq!(code_dc, 1, "{err}");
    assert!(err.contains("not valid for name"), "{err}");
    assert!(
        pool_page_shows("not valid for name rs1.lab"),
        "rs0's /pool never showed the name mismatch"
    );
    let _ = pids;
}

/// `curl` over TLS to rs0's https endpoint from `ns`: the HTTP code, "000" when the
/// connection or handshake failed.
fn curl_https(ns: &Netns, ca: &Cert, path: &str, cert: Option<&Cert>) -> String {
    let client = cert
        .map(|c| format!("--cert {} --key {}", c.cert.display(), c.key.display()))
        .unwrap_or_default();
    let o = ns.run(&format!(
        "curl -s -o /dev/null -m 3 -w '%{{http_code}}' --cacert {} {client} https://rs0.lab:{HTTPS_PORT}{path}",
        ca.cert.display()
    ));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn report_https_gives_status_only_to_allowed_client_certificates() {
    let lab = DrLab::build(
        "tlsclient",
        LabOpts {
            reals: 1,
            ..LabOpts::default()
        },
    );
    let rs0 = &lab.reals[0];
    let client = &lab.client.ns;
    hosts(&[&rs0.ns, client, &lab.director.ns]);
    let dir = TestDir::new(&lab.prefix);
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca_a = make_ca(&pki, "ca-a");
    let ca_b = make_ca(&pki, "ca-b");
    let c0 = make_leaf(&pki, &ca_a, "rs0.lab", "rs0");
    let director = make_leaf(&pki, &ca_a, "director.lab", "director");
    let outsider = make_leaf(&pki, &ca_a, "outsider.lab", "outsider");
    let forged = make_leaf(&pki, &ca_b, "director.lab", "forged-director");

    prepare_real_by_hand(rs0);
    let cfg = tls_node(
        &dir.join("rs0"),
        &TlsNode {
            ip: rs0.ip,
            name: "rs0.lab",
            cert: &c0,
            ca: &ca_a.cert,
            allow_clients: &["director.lab"],
            report_extra: "max_per_source = 4",
        },
    );
    let log = dir.join("rs0").join("agent.log");
    let agent = start_agent(rs0, &cfg, &log, HTTP_PORT);
    assert!(
        wait_health(client, rs0.ip, HTTP_PORT, 200, Duration::from_secs(10)).is_some(),
        "{}",
        log_text(&log)
    );

    // The client's address is in report.allow, which alone gave /status before; with
    // client_ca it takes an allowed certificate, and the plain listener gives it to nobody.
    let o = client.run(&format!(
        "curl -s -o /dev/null -m 3 -w '%{{http_code}}' http://{}:{HTTP_PORT}/status",
        rs0.ip
    ));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "403");
    assert_eq!(curl_https(client, &ca_a, "/status", None), "403");
    assert_eq!(curl_https(client, &ca_a, "/pool", None), "403");
    assert_eq!(curl_https(client, &ca_a, "/health", None), "200");
    assert_eq!(curl_https(client, &ca_a, "/metrics", None), "200");
    // A certificate from the right CA whose name is not in allow_clients.
    assert_eq!(curl_https(client, &ca_a, "/status", Some(&outsider)), "403");
    // The allowed name from another CA: the handshake fails.
    assert_eq!(curl_https(client, &ca_a, "/status", Some(&forged)), "000");
    assert_eq!(curl_https(client, &ca_a, "/status", Some(&director)), "200");

    // `pool status` the same way: without a certificate the node is unreachable with the
    // HTTP 403; with the director's it is up.
    let peer = format!(
        "--peer https://rs0.lab:{HTTPS_PORT} --ca {}",
        ca_a.cert.display()
    );
    let (code, out, err) = lvs_bare(client, &format!("pool status {peer}"));
    eprintln!("{out}{err}");
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(state_of(&out, "rs0.lab"), "unreachable", "{out}");
    assert!(line_for(&out, "rs0.lab").contains("HTTP 403"), "{out}");
    let (code, out, err) = lvs_bare(
        client,
        &format!(
            "pool status {peer} --cert {} --key {}",
            director.cert.display(),
            director.key.display()
        ),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(state_of(&out, "rs0.lab"), "up", "{out}");
    // ... and with the forged one, the handshake error.
    let (code, out, _) = lvs_bare(
        client,
        &format!(
            "pool status {peer} --cert {} --key {}",
            forged.cert.display(),
            forged.key.display()
        ),
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(state_of(&out, "rs0.lab"), "unreachable", "{out}");
    assert!(line_for(&out, "rs0.lab").contains("TLS"), "{out}");

    // The gate comes before the handshake: a client holding its 4 connections without
    // starting a handshake gets no fifth, while the director reads /status; the stalled
    // connections are closed at the header timeout (5 s) and the client is let in again.
    let holder = client.spawn(&format!(
        "python3 -c \"import socket,time\ns=[socket.create_connection(('{}',{HTTPS_PORT})) for _ in range(4)]\ntime.sleep(30)\"",
        rs0.ip
    ));
    let held = wait_for(Duration::from_secs(5), || {
        let o = client.run(&format!(
            "ss -Htn state established '( dport = :{HTTPS_PORT} )'"
        ));
        (String::from_utf8_lossy(&o.stdout).lines().count() == 4).then_some(())
    });
    assert!(held.is_some(), "the holder did not connect");
    assert_eq!(curl_https(client, &ca_a, "/health", None), "000");
    assert_eq!(
        curl_https(&lab.director.ns, &ca_a, "/status", Some(&director)),
        "200"
    );
    let back = wait_for(Duration::from_secs(8), || {
        (curl_https(client, &ca_a, "/health", None) == "200").then_some(())
    });
    assert!(back.is_some(), "stalled handshakes kept their slots");
    client.kill(holder);

    // A SIGHUP with the key opened to others is refused with the key and the fix; the
    // running listener keeps serving with the old config.
    std::fs::set_permissions(&c0.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    rs0.ns.signal(agent, nix::sys::signal::Signal::SIGHUP);
    let refused = wait_for(Duration::from_secs(5), || {
        let o = lab.director.ns.run(&format!(
            "curl -s -m 3 --cacert {} --cert {} --key {} https://rs0.lab:{HTTPS_PORT}/status",
            ca_a.cert.display(),
            director.cert.display(),
            director.key.display()
        ));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        v["reload_error"].as_str().map(str::to_string)
    })
    .unwrap_or_else(|| panic!("reload not refused: {}", log_text(&log)));
    assert!(
        refused.contains("report.tls_key") && refused.contains("chmod 600"),
        "{refused}"
    );
}

#[test]
fn bad_tls_files_exit_2_naming_the_key_and_the_fix() {
    // In a namespace of its own: nothing here may reach the host, even if a check failed
    // to stop `run`.
    let ns = Netns::new(&lab::netns::unique_prefix("tlsbad"));
    let dir = TestDir::new(&ns.name);
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = make_ca(&pki, "ca-a");
    let c0 = make_leaf(&pki, &ca, "rs0.lab", "rs0");
    let c1 = make_leaf(&pki, &ca, "rs1.lab", "rs1");
    let open_key = pki.join("open.key");
    std::fs::copy(&c0.key, &open_key).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();

    let base = |cert: &Cert| {
        std::fs::read_to_string(tls_node(
            &dir.join("cfg"),
            &TlsNode {
                ip: real(0),
                name: "rs0.lab",
                cert,
                ca: &ca.cert,
                allow_clients: &[],
                report_extra: "",
            },
        ))
        .unwrap()
    };
    let run = |toml: String, want: &[&str]| {
        let p = dir.join("bad.toml");
        std::fs::write(&p, &toml).unwrap();
        let (code, _, err) = text(&lvs(&ns, &p, "run"));
        assert_eq!(code, 2, "{err}\n{toml}");
        for w in want {
            assert!(err.contains(w), "no `{w}` in: {err}");
        }
    };
    let key0 = format!("\"{}\"", c0.key.display());
    let cert0 = format!("\"{}\"", c0.cert.display());
    // A key others can read.
    run(
        base(&c0).replacen(&key0, &format!("\"{}\"", open_key.display()), 1),
        &["report.tls_key", "0644", "chmod 600"],
    );
    // A missing certificate.
    run(
        base(&c0).replacen(&cert0, "\"/nonexistent/hostcert.pem\"", 1),
        &["report.tls_cert", "/nonexistent/hostcert.pem"],
    );
    // A key of another certificate, for the listener and for the pool client.
    let other = format!("\"{}\"", c1.key.display());
    run(
        base(&c0).replacen(&key0, &other, 1),
        &["report.tls_key", "does not match", "openssl"],
    );
    let t = base(&c0);
    let at = t.rfind(&key0).unwrap();
    let mut pool_bad = t.clone();
    pool_bad.replace_range(at..at + key0.len(), &other);
    run(pool_bad, &["pool.key", "does not match"]);

    // Readers of the config other than the daemon may run unprivileged (the nagios plugin
    // under NRPE): a key they cannot read is no error for them; a key others can read is.
    let good = dir.join("good.toml");
    std::fs::write(&good, base(&c0)).unwrap();
    let as_nobody = |cfg: &Path| {
        text(&ns.run(&format!(
            "setpriv --reuid=nobody --regid=nogroup --clear-groups {} -c {} director-config",
            bins::lvs_node().display(),
            cfg.display()
        )))
    };
    let (code, out, err) = as_nobody(&good);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&real(0).to_string()), "{out}");
    let open_cfg = dir.join("open.toml");
    std::fs::write(
        &open_cfg,
        base(&c0).replacen(&key0, &format!("\"{}\"", open_key.display()), 1),
    )
    .unwrap();
    let (code, _, err) = as_nobody(&open_cfg);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("report.tls_key") && err.contains("chmod 600"),
        "{err}"
    );

    // The same checks for the flags of `pool status` and `director-config --pool`.
    let (code, _, err) = lvs_bare(
        &ns,
        &format!(
            "pool status --peer https://rs0.lab:{HTTPS_PORT} --ca {} --cert {} --key {}",
            ca.cert.display(),
            c0.cert.display(),
            c1.key.display()
        ),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--key") && err.contains("does not match"),
        "{err}"
    );
    let (code, _, err) = lvs_bare(
        &ns,
        &format!(
            "director-config --pool https://rs0.lab:{HTTPS_PORT} --cert {} --key {}",
            c0.cert.display(),
            open_key.display()
        ),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--key") && err.contains("chmod 600"), "{err}");
    let (code, _, err) = lvs_bare(
        &ns,
        &format!("pool status --peer https://rs0.lab:{HTTPS_PORT} --ca /nonexistent/ca.pem"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--ca") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}
