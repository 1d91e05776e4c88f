//! A hostile peer. Whoever answers a node's plain-HTTP report port (root on any node, a
//! local user who binds it while the agent is stopped, a LAN spoofer) can send any
//! `/status` document. Here a fake peer answers `/status` from a real server's address:
//! it IS the attacker, so it is a small HTTP server of the test's own (python3) serving a
//! document the test crafts from a real agent's, not a mock of anything under test. The
//! agents, `lvs-node pool status`, `director-config --pool` and keepalived are the real ones.
//!
//! What it proves (docs/security.md, "The pool (peer nodes)"):
//! - a host name with a newline and a keepalived block reaches no director config
//!   (`keepalived -t` loads what is printed, and it holds no MISC_CHECK);
//! - a weight of 4294967295 is clamped to 256: the peer never gets every upload;
//! - a redirect target that does not name the peer (`http://evil.example:8000`, or a name
//!   resolving elsewhere) makes the peer invalid: no 307 goes to it; a name that resolves
//!   to the peer's real address is accepted;
//! - escape sequences in a check reason never reach the terminal, an oversized answer or
//!   one with too many entries is refused, and `pool status`, `--json` and `/pool` show the
//!   peer as `invalid: <reason>`.

mod daemon_util;

use daemon_util::*;
use lab::dr::{Host, VIP};
use lab::{bins, wait_for, DrLab, LabOpts};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const REDIRECT_PORT: u16 = 8000;

/// The fake peer: answers `GET /status` with the current content of `doc` (re-read at
/// every request, so the test changes the attack between phases), close-delimited with no
/// Content-Length (so the reader's size bound is the one that counts), 404 otherwise.
const FAKE_PEER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/status":
            self.send_response(404)
            self.end_headers()
            return
        body = open(sys.argv[3], "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"#;

struct Fake {
    doc: PathBuf,
}

impl Fake {
    /// Starts the fake peer on `h`'s address, port 8080, serving `doc`.
    fn start(h: &Host, dir: &Path, doc: &Value) -> Fake {
        std::fs::create_dir_all(dir).unwrap();
        let script = dir.join("fake_peer.py");
        std::fs::write(&script, FAKE_PEER).unwrap();
        let f = Fake {
            doc: dir.join("status.json"),
        };
        f.serve(doc);
        h.ns.spawn_logged(
            &format!(
                "python3 {} {} {HTTP_PORT} {}",
                script.display(),
                h.ip,
                f.doc.display()
            ),
            &dir.join("fake.log"),
        );
        let up = wait_for(Duration::from_secs(10), || {
            h.ns.run(&format!(
                "curl -sf -o /dev/null -m 1 http://{}:{HTTP_PORT}/status",
                h.ip
            ))
            .status
            .success()
            .then_some(())
        });
        assert!(up.is_some(), "the fake peer did not start");
        f
    }
    fn serve(&self, doc: &Value) {
        self.serve_bytes(serde_json::to_string(doc).unwrap().as_bytes());
    }
    fn serve_bytes(&self, b: &[u8]) {
        let tmp = self.doc.with_extension("tmp");
        std::fs::write(&tmp, b).unwrap();
        std::fs::rename(&tmp, &self.doc).unwrap();
    }
}

/// A node with `[pool] peers` = every real server, readable by all of them and the
/// director; `extra` adds tables (a `[[redirect]]`).
fn node_config(lab: &DrLab, rs: &Host, dir: &Path, ports: &str, extra: &str) -> PathBuf {
    let (peers, allow) = pool_lists(&lab.reals);
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
             [[vip]]\naddress = \"{VIP}\"\nports = [{ports}]\n\
             [daemon]\nmanage_dataplane = false\ncontrol_socket = \"{d}/control.sock\"\n\
             [report]\nhttp = \"{ip}:{HTTP_PORT}\"\nagent_check = \"{ip}:{AGENT_PORT}\"\nallow = [{allow}]\n\
             [pool]\npeers = [{p}]\ninterval = \"500ms\"\ntimeout = \"400ms\"\n{extra}\n",
            ip = rs.ip,
            d = dir.display(),
            allow = allow,
            p = peers,
        ),
    )
    .unwrap();
    cfg
}

/// A real agent's /status, as the attacker would copy it, rewritten to claim `fake`'s
/// addresses.
fn forged_from(real: &Host, fake: &Host) -> Value {
    let out = real.ok(&format!(
        "curl -sf -m 2 http://{}:{HTTP_PORT}/status",
        real.ip
    ));
    let mut d: Value = serde_json::from_str(&out).expect("a real /status");
    d["node"]["hostname"] = json!("fake.lab");
    d["node"]["real_ip"] = json!(fake.ip.to_string());
    d["node"]["report_http"] = json!(format!("{}:{HTTP_PORT}", fake.ip));
    d["node"]["agent_check"] = json!(format!("{}:{AGENT_PORT}", fake.ip));
    d["node"]["redirects"] = json!([]);
    d
}

fn run_pool_status(rs: &Host, cfg: &Path, args: &str) -> (i32, Vec<u8>) {
    let o: Output = lvs(&rs.ns, cfg, &format!("pool status {args}"));
    (o.status.code().unwrap_or(-1), o.stdout)
}

/// `pool status` of `cfg`'s node, line of the node at `ip`.
fn status_line(rs: &Host, cfg: &Path, ip: impl std::fmt::Display) -> String {
    let (_, out) = run_pool_status(rs, cfg, "");
    let out = String::from_utf8_lossy(&out).into_owned();
    let key = format!("http://{ip}:{HTTP_PORT} ");
    out.lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("no line for {ip}:\n{out}"))
        .to_string()
}

fn wait_state(rs: &Host, cfg: &Path, ip: impl std::fmt::Display + Copy, state: &str) -> String {
    wait_for(Duration::from_secs(10), || {
        let l = status_line(rs, cfg, ip);
        (l.split_whitespace().nth(1) == Some(state)).then_some(l)
    })
    .unwrap_or_else(|| {
        panic!(
            "{ip} never {state}: {}",
            status_line(rs, cfg, ip).escape_debug()
        )
    })
}

#[test]
fn a_hostile_host_name_reaches_no_director_config() {
    let lab = DrLab::build("phost", LabOpts::default());
    let dir = TestDir::new(&lab.prefix);
    let (rs0, rs1) = (&lab.reals[0], &lab.reals[1]);
    prepare_real_by_hand(rs0);
    let cfg = node_config(&lab, rs0, &dir.join("rs0"), "2811", "");
    start_agent(rs0, &cfg, &dir.join("rs0").join("agent.log"), HTTP_PORT);

    // The attack seen on main: the host name ends the header comment, and the rest is a
    // virtual_server with a MISC_CHECK that keepalived would run as root.
    let mut d = forged_from(rs0, rs1);
    d["node"]["hostname"] = json!(
        "rs2.lab)\nvirtual_server 192.0.2.200 80 {\n    delay_loop 1\n    lb_kind DR\n    protocol TCP\n    \
         real_server 192.0.2.12 80 {\n        MISC_CHECK {\n            misc_path \"/bin/touch /tmp/lvs-pwned\"\n        }\n    }\n}\n\
         frontend evil\n    bind 192.0.2.200:80\n# ("
    );
    let _fake = Fake::start(rs1, &dir.join("fake"), &d);
    let run = |args: &str| -> Output {
        lab.director.ns.run(&format!(
            "{} -c /nonexistent director-config --pool http://{}:{HTTP_PORT} --pool http://{}:{HTTP_PORT} {args}",
            bins::lvs_node().display(),
            rs0.ip,
            rs1.ip
        ))
    };

    // --allow-missing: the real node is configured, the hostile one left out and named.
    let o = run("--allow-missing");
    let k = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("{k}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(!k.contains("MISC_CHECK"), "the peer's block got in:\n{k}");
    assert!(!k.contains("/bin/touch"), "{k}");
    assert!(!k.contains("192.0.2.200"), "{k}");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        k.contains(&format!(
            "LEFT OUT (invalid /status, --allow-missing): http://{}:{HTTP_PORT}",
            rs1.ip
        )),
        "{k}"
    );
    assert_eq!(k.matches("real_server ").count(), 1, "{k}");
    assert!(
        k.contains(&format!("real_server {} 2811 {{", rs0.ip)),
        "{k}"
    );
    // The real keepalived loads what was printed, and finds no MISC_CHECK in it.
    let f = dir.join("keepalived.conf");
    std::fs::write(&f, &k).unwrap();
    let out = Command::new("keepalived")
        .arg("-t")
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "keepalived -t rejected:\n{k}\n{err}");
    assert!(!err.contains("MISC_CHECK"), "{err}");
    let stat = std::process::Command::new("grep")
        .arg("-c")
        .arg("MISC_CHECK")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&stat.stdout).trim(), "0");

    // HAProxy output likewise.
    let o = run("--allow-missing --haproxy");
    let h = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success());
    assert!(!h.contains("frontend evil"), "{h}");
    assert!(!h.contains("192.0.2.200"), "{h}");

    // Without --allow-missing: an error naming the peer and why; nothing printed. The
    // reason quotes the host name with its line breaks escaped.
    let o = run("");
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "error: node http://{}:{HTTP_PORT} sent an invalid /status, not configured: host name",
            rs1.ip
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "one line per problem:\n{err}");
}

#[test]
fn pool_choice_never_sends_uploads_off_the_pool() {
    let lab = DrLab::build(
        "pchoose",
        LabOpts {
            reals: 3,
            ports: vec![REDIRECT_PORT],
            ..LabOpts::default()
        },
    );
    // Only rs0 and rs1 run agents and get client connections; rs2 is the attacker.
    lab.set_backends(&[0, 1]);
    let dir = TestDir::new(&lab.prefix);
    let (rs0, rs1, rs2) = (&lab.reals[0], &lab.reals[1], &lab.reals[2]);
    let mut cfgs = Vec::new();
    for (i, rs) in [rs0, rs1].into_iter().enumerate() {
        // The names a peer's targets may give: fake.lab is the attacker's own address,
        // other.lab is not.
        rs.ns.write_etc(
            "hosts",
            &format!(
                "127.0.0.1 localhost\n{} fake.lab\n192.0.2.99 other.lab\n",
                rs2.ip
            ),
        );
        prepare_real_by_hand(rs);
        let sub = dir.join(&format!("rs{i}"));
        let cfg = node_config(
            &lab,
            rs,
            &sub,
            &REDIRECT_PORT.to_string(),
            &format!(
                "[[redirect]]\nlisten = \"{VIP}:{REDIRECT_PORT}\"\nchoose = \"pool\"\n\
                 target = \"http://{}:{REDIRECT_PORT}\"\n",
                rs.ip
            ),
        );
        start_agent(rs, &cfg, &sub.join("agent.log"), HTTP_PORT);
        cfgs.push(cfg);
    }
    // Where 30 uploads to the VIP are redirected: target base -> count.
    let spread = || -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for k in 0..30 {
            let out = lab.client.ok(&format!(
                "curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' -X PUT -H 'Content-Length: 0' http://{VIP}:{REDIRECT_PORT}/up{k}"
            ));
            let (code, url) = out.split_once(' ').unwrap_or((&out, ""));
            assert_eq!(code, "307", "{out}");
            let base = url
                .strip_suffix(&format!("/up{k}"))
                .unwrap_or(url)
                .to_string();
            *m.entry(base).or_insert(0) += 1;
        }
        m
    };
    let target = |h: &Host| format!("http://{}:{REDIRECT_PORT}", h.ip);

    // 1. Weight 4294967295 with a target of its own: clamped to 256, so it gets a share
    //    (about 256 of 456), never every upload.
    let mut d = forged_from(rs0, rs2);
    for w in ["/weight", "/base_weight", "/node/base_weight"] {
        *d.pointer_mut(w).unwrap() = json!(u32::MAX);
    }
    d["node"]["redirects"] =
        json!([{"listen": format!("{VIP}:{REDIRECT_PORT}"), "target": target(rs2)}]);
    let fake = Fake::start(rs2, &dir.join("fake"), &d);
    wait_state(rs0, &cfgs[0], rs2.ip, "up");
    std::thread::sleep(Duration::from_millis(1500)); // a poll round on both nodes
    let m = spread();
    eprintln!("weight u32::MAX: {m:?}");
    let to_fake = m.get(&target(rs2)).copied().unwrap_or(0);
    assert!(to_fake < 30, "every upload went to the peer: {m:?}");
    assert!(
        m.contains_key(&target(rs0)) || m.contains_key(&target(rs1)),
        "{m:?}"
    );
    let (_, json) = run_pool_status(rs0, &cfgs[0], "--json");
    let v: Value = serde_json::from_slice(&json).unwrap();
    let fake_json = v
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["url"] == format!("http://{}:{HTTP_PORT}", rs2.ip))
        .unwrap();
    assert_eq!(fake_json["status"]["weight"], 256, "{fake_json}");

    // 2. A target that is not the peer: invalid, and no redirect goes there.
    d["weight"] = json!(100);
    d["node"]["redirects"] =
        json!([{"listen": format!("{VIP}:{REDIRECT_PORT}"), "target": "http://evil.example:8000"}]);
    fake.serve(&d);
    std::thread::sleep(Duration::from_millis(1500)); // a poll round on both nodes
    let m = spread();
    eprintln!("target evil.example: {m:?}");
    assert!(
        m.keys().all(|t| *t == target(rs0) || *t == target(rs1)),
        "uploads sent off the pool: {m:?}"
    );
    let l = wait_state(rs0, &cfgs[0], rs2.ip, "invalid");
    assert!(
        l.contains("invalid: redirect target `http://evil.example:8000`"),
        "{l}"
    );
    let (code, json) = run_pool_status(rs0, &cfgs[0], "--json");
    assert_eq!(code, 1, "an invalid peer is an error");
    let v: Value = serde_json::from_slice(&json).unwrap();
    let fake_json = v
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["url"] == format!("http://{}:{HTTP_PORT}", rs2.ip))
        .unwrap();
    assert_eq!(fake_json["state"], "invalid", "{fake_json}");
    assert!(fake_json["status"].is_null(), "{fake_json}");
    assert!(
        fake_json["invalid"]
            .as_str()
            .unwrap()
            .contains("evil.example"),
        "{fake_json}"
    );
    // /pool on rs0 shows it, with the reason.
    let page = rs1.ok(&format!("curl -s -m 5 http://{}:{HTTP_PORT}/pool", rs0.ip));
    assert!(
        page.contains("<span class=\"st st-invalid\">invalid</span>"),
        "{page}"
    );
    assert!(page.contains("invalid: redirect target"), "{page}");
    // No redirect counter names the peer's target.
    let metrics = rs1.ok(&format!(
        "curl -s -m 5 http://{}:{HTTP_PORT}/metrics",
        rs0.ip
    ));
    assert!(!metrics.contains("evil.example"), "{metrics}");
    // The pool in /metrics: counted as invalid, and by URL for the directors' part.
    assert!(
        metrics.contains("lvs_realserver_pool_peers{state=\"invalid\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "lvs_realserver_pool_peer_state{{peer=\"http://{}:{HTTP_PORT}\",state=\"invalid\"}} 1",
            rs2.ip
        )),
        "{metrics}"
    );

    // 3. A host name counts when it resolves (here through the node's /etc/hosts) to the
    //    peer's real address, and not when it resolves elsewhere.
    d["node"]["redirects"] =
        json!([{"listen": format!("{VIP}:{REDIRECT_PORT}"), "target": "http://other.lab:8000"}]);
    fake.serve(&d);
    std::thread::sleep(Duration::from_millis(1500));
    let l = wait_state(rs0, &cfgs[0], rs2.ip, "invalid");
    assert!(l.contains("other.lab"), "{l}");
    d["node"]["redirects"] =
        json!([{"listen": format!("{VIP}:{REDIRECT_PORT}"), "target": "http://fake.lab:8000"}]);
    fake.serve(&d);
    wait_state(rs0, &cfgs[0], rs2.ip, "up");
    std::thread::sleep(Duration::from_millis(1500));
    let m = spread();
    eprintln!("target fake.lab: {m:?}");
    assert!(m.contains_key("http://fake.lab:8000"), "{m:?}");
    assert!(!m.contains_key("http://other.lab:8000"), "{m:?}");
}

#[test]
fn pool_status_prints_no_escape_sequence_and_refuses_oversized_answers() {
    let lab = DrLab::build("pesc", LabOpts::default());
    let dir = TestDir::new(&lab.prefix);
    let (rs0, rs1) = (&lab.reals[0], &lab.reals[1]);
    prepare_real_by_hand(rs0);
    let cfg = node_config(&lab, rs0, &dir.join("rs0"), "2811", "");
    start_agent(rs0, &cfg, &dir.join("rs0").join("agent.log"), HTTP_PORT);
    let peer = format!("--peer http://{}:{HTTP_PORT}", rs1.ip);

    // A check reason that would retitle the terminal, clear it and turn it red.
    let mut d = forged_from(rs0, rs1);
    d["state"] = json!("down");
    d["failing"] = json!([{"name": "gridftp", "kind": "gridftp",
        "reason": "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mconnection refused"}]);
    let fake = Fake::start(rs1, &dir.join("fake"), &d);
    let (code, out) = run_pool_status(rs0, &cfg, &peer);
    let text = String::from_utf8_lossy(&out).into_owned();
    eprintln!("{}", text.escape_debug());
    assert!(
        !out.contains(&0x1b),
        "an ESC byte reached the terminal: {text:?}"
    );
    assert!(!out.contains(&0x07), "{text:?}");
    assert_eq!(code, 1);
    let l = status_line(rs0, &cfg, rs1.ip);
    assert_eq!(l.split_whitespace().nth(1), Some("invalid"), "{l}");
    assert!(
        l.contains("invalid: failing check reason `\\u{1b}]0;pwned"),
        "{l}"
    );
    let (_, json) = run_pool_status(rs0, &cfg, &format!("{peer} --json"));
    assert!(!json.contains(&0x1b));
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v[0]["state"], "invalid");

    // An answer larger than the bound (256 KiB), sent without a Content-Length.
    let mut big = d.clone();
    big["failing"] = json!([]);
    big["version"] = json!("x".repeat(300 * 1024));
    fake.serve(&big);
    let l = status_line(rs0, &cfg, rs1.ip);
    assert_eq!(l.split_whitespace().nth(1), Some("invalid"), "{l}");
    assert!(l.contains("response larger than 262144 bytes"), "{l}");

    // Within the bound but with 2,000 failing checks: refused by count.
    let mut many = d.clone();
    many["failing"] = Value::Array(
        (0..2000)
            .map(|i| json!({"name": format!("c{i}"), "kind": "tcp", "reason": "x"}))
            .collect(),
    );
    fake.serve(&many);
    let l = status_line(rs0, &cfg, rs1.ip);
    assert!(l.len() < 400, "{l}");
    assert!(
        l.contains("invalid: too many failing checks (2000 > 256)"),
        "{l}"
    );

    // The running poller shows it on /pool and records it, as `invalid`.
    let page = wait_for(Duration::from_secs(5), || {
        let p = rs0.ok(&format!("curl -s -m 5 http://{}:{HTTP_PORT}/pool", rs0.ip));
        (p.contains("<span class=\"st st-invalid\">invalid</span>")
            && p.contains("invalid: too many failing checks"))
        .then_some(p)
    })
    .unwrap_or_else(|| {
        panic!(
            "/pool never showed the peer invalid; agent log:\n{}",
            std::fs::read_to_string(dir.join("rs0").join("agent.log")).unwrap_or_default()
        )
    });
    assert!(page.contains("1 up, 1 invalid"), "{page}");
}
