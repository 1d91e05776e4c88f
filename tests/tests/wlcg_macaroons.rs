//! XrdMacaroons behind the VIP of a REAL IPVS director (the lab of tests/src/wlcg.rs): a
//! macaroon is an HMAC under the node's `macaroons.secretkey`, so one issued by one node
//! verifies on another only when both hold the same secret. Through the VIP a client gets
//! its macaroon from one node and presents it to whichever node the director picks.
//!
//! - With one secret on every node, a macaroon requested from rs1 (with a token) is
//!   accepted by rs1, rs2 and through the VIP (a PROPFIND that anonymous clients are
//!   refused); `/status` carries the same fingerprint of the
//!   secret on both nodes (never the secret) and `pool status` is clean.
//! - With another secret on rs2, rs2 refuses rs1's macaroon; `pool status` flags rs2 and
//!   exits 1.
//! - doctor's `xrootd.macaroon_secret`: ok while the agent fingerprints the file XRootD
//!   signs with; an error while the secret is readable by others (0644), ok again at 0600.
//! - With rs1's secret copied to rs2, both verify it again and `pool status` is clean.

use lab::netns::wait_for;
use lab::wlcg::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A macaroon for reading /data/`file`, asked of node `i` with a token (the request
/// goes to the node's own name, as `gfal-copy` or FTS do after a redirect).
fn request_macaroon(w: &WlcgLab, i: usize, tok: &str, file: &str) -> String {
    let trust = w.pki.trust.0.display();
    let o = w.client_ok(
        "",
        &format!(
            "curl -sS --fail-with-body --capath {trust} -X POST \
             -H 'Content-Type: application/macaroon-request' \
             -H 'Authorization: Bearer {tok}' \
             -d '{{\"caveats\": [\"activity:DOWNLOAD,READ_METADATA\"], \"validity\": \"PT10M\"}}' \
             https://{}:{DAVS_PORT}/data/{file}",
            node_name(i)
        ),
    );
    let v: serde_json::Value =
        serde_json::from_str(o.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {o}"));
    v["macaroon"]
        .as_str()
        .unwrap_or_else(|| panic!("no macaroon in {o}"))
        .to_string()
}

/// PROPFIND (Depth 0) of /data/`file` at `host` with `auth` as the bearer (none when
/// empty): the HTTP status, and the body. XRootD 5.5 gives a macaroon asked for with a
/// token the caveat `activity:READ_METADATA` besides those asked for (caveats add up), so
/// a stat is what such a macaroon allows; verifying it is the same HMAC check whatever
/// the activity.
fn stat_with(w: &WlcgLab, host: &str, auth: &str, file: &str) -> (String, String) {
    let trust = w.pki.trust.0.display();
    let h = if auth.is_empty() {
        String::new()
    } else {
        format!("-H 'Authorization: Bearer {auth}'")
    };
    let o = w.client(
        "",
        &format!(
            "curl -sS --capath {trust} -X PROPFIND -H 'Depth: 0' {h} \
             -w '\\n%{{http_code}}' https://{host}:{DAVS_PORT}/data/{file}"
        ),
    );
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = t.trim_end().rsplit_once('\n').unwrap_or(("", t.trim()));
    (code.to_string(), body.to_string())
}

/// The macaroon lets node `host` stat the seeded file: 207 with its size.
fn verifies(w: &WlcgLab, host: &str, mac: &str) -> bool {
    let (code, body) = stat_with(w, host, mac, "mac.bin");
    code == "207" && body.contains("1048576")
}

/// `lvs-node pool status` from the client namespace (an admin on the directors' network).
fn pool_status(w: &WlcgLab) -> (i32, String) {
    let mut cmd = format!("{} pool status", lab::bins::lvs_node().display());
    for rs in &w.lab.reals {
        cmd.push_str(&format!(" --peer http://{}:{AGENT_PORT}", rs.ip));
    }
    let o = w.lab.client.ns.run(&cmd);
    (o.status.code().unwrap_or(-1), text(&o))
}

fn fingerprint(w: &WlcgLab, i: usize) -> String {
    let o = w.lab.client.ns.run(&format!(
        "curl -sS -m 2 http://{}:{AGENT_PORT}/status",
        w.lab.reals[i].ip
    ));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["macaroon"]["fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_macaroon_from_one_node_verifies_on_all_and_pool_status_flags_a_different_secret() {
    let mut w = WlcgLab::build("wlcgmac");
    w.seed_pool("mac.bin", 1 << 20);
    let tok = w.issuer.token(VIP_AUD, SCOPE_RW);

    // Without credentials the nodes refuse the stat: what follows is the macaroon's doing.
    for i in 0..2 {
        let (code, _) = stat_with(&w, &node_name(i), "", "mac.bin");
        assert_eq!(code, "403", "an anonymous PROPFIND on {}", node_name(i));
    }
    // One secret: rs1's macaroon verifies on rs1, on rs2 and through the VIP.
    let mac = request_macaroon(&w, 0, &tok, "mac.bin");
    assert!(verifies(&w, &node_name(0), &mac), "on the issuing node");
    assert!(verifies(&w, &node_name(1), &mac), "on the other node");
    for _ in 0..4 {
        assert!(verifies(&w, VIP_HOST, &mac), "through the VIP");
    }
    // /status: the same fingerprint on both nodes, not the secret.
    let secret = std::fs::read_to_string(w.node_secret(0)).unwrap();
    let f0 = fingerprint(&w, 0);
    assert_eq!(f0.len(), 16, "node 1's /status has a fingerprint: {f0:?}");
    assert_eq!(fingerprint(&w, 1), f0);
    let status = w.lab.client.ns.ok(&format!(
        "curl -sS http://{}:{AGENT_PORT}/status",
        w.lab.reals[0].ip
    ));
    assert!(
        !status.contains(secret.trim()) && !status.contains(&secret.trim()[..16]),
        "/status must not carry the secret"
    );
    let (code, out) = pool_status(&w);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("MACAROON"), "{out}");

    // doctor: the agent fingerprints the file XRootD signs with, and only its owner reads it.
    let f = w.doctor_finding(0, "xrootd.macaroon_secret");
    assert_eq!(f["severity"], "ok", "{f:#}");
    std::fs::set_permissions(w.node_secret(0), std::fs::Permissions::from_mode(0o644)).unwrap();
    let f = w.doctor_finding(0, "xrootd.macaroon_secret");
    assert_eq!(f["severity"], "error", "a world-readable secret: {f:#}");
    assert!(
        f["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with("chmod 0600 "),
        "{f:#}"
    );
    std::fs::set_permissions(w.node_secret(0), std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = w.doctor_finding(0, "xrootd.macaroon_secret");
    assert_eq!(f["severity"], "ok", "{f:#}");

    // Another secret on rs2: it refuses rs1's macaroon, and pool status flags it.
    w.restart_node_with_secret(1, &new_secret());
    assert_eq!(
        stat_with(&w, &node_name(1), &mac, "mac.bin").0,
        "403",
        "rs2 with another secret should refuse rs1's macaroon"
    );
    assert!(verifies(&w, &node_name(0), &mac), "rs1 still takes its own");
    let flagged = wait_for(Duration::from_secs(15), || {
        let (code, out) = pool_status(&w);
        (code == 1 && out.contains("MACAROON SECRET DIFFERS")).then_some(out)
    })
    .unwrap_or_else(|| panic!("pool status did not flag rs2:\n{}", pool_status(&w).1));
    let rs2 = format!("http://{}:{AGENT_PORT}", w.lab.reals[1].ip);
    assert!(
        flagged
            .lines()
            .any(|l| l.contains(&rs2) && l.ends_with("<- differs")),
        "rs2 is the one flagged:\n{flagged}"
    );
    eprintln!("{flagged}");

    // rs1's secret on rs2: the macaroon verifies there again and pool status is clean.
    w.restart_node_with_secret(1, secret.trim());
    assert!(verifies(&w, &node_name(1), &mac), "rs2 with rs1's secret");
    let clean = wait_for(Duration::from_secs(15), || {
        let (code, out) = pool_status(&w);
        (code == 0 && !out.contains("MACAROON")).then_some(())
    });
    assert!(
        clean.is_some(),
        "pool status after the fix:\n{}",
        pool_status(&w).1
    );
}
