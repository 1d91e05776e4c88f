//! Tokens through the VIP of a REAL IPVS director (the lab of tests/src/wlcg.rs): the
//! issuer's ES256 key is published as a JWKS over HTTPS, tokens are minted with
//! scitokens-cpp's `scitokens-create`, and libXrdAccSciTokens on the XRootD nodes judges
//! them.
//!
//! - Tokens whose audience is the VIP's URL or its host name are accepted over `root://`
//!   and `davs://`; a token for a node's own name, a token signed by a key the issuer never
//!   published, and no token at all are refused (nothing is read or written).
//! - doctor's `xrootd.token_audience`: ok on the lab's node; a node whose scitokens.cfg lists
//!   its own name is an error naming the line to set, and the real xrootd refuses the VIP's
//!   tokens; with the line doctor printed, doctor is ok and the same token is accepted.

use lab::gridftp::sha256;
use lab::wlcg::*;

fn bearer(t: &str) -> String {
    format!("BEARER_TOKEN={t}")
}

#[test]
fn vip_audience_tokens_accepted_others_refused_and_doctor_names_the_audience_line() {
    let mut w = WlcgLab::build("wlcgtok");
    let trust = w.pki.trust.0.display().to_string();
    let seed = w.seed_pool("tok.bin", 1 << 20);
    let vip_root = format!("root://{VIP_HOST}:{ROOT_PORT}//data");
    let vip_davs = format!("davs://{VIP_HOST}:{DAVS_PORT}/data");

    // Accepted: the VIP's URL and its host name, over root:// and davs://, reading and
    // writing, several times so that both nodes judge them.
    for (k, aud) in [VIP_AUD, VIP_HOST].into_iter().enumerate() {
        let tok = w.issuer.token(aud, SCOPE_RW);
        for n in 0..2 {
            let out = w.scratch(&format!("ok-{k}-{n}.root"));
            w.client_ok(
                &bearer(&tok),
                &format!("xrdcp -f {vip_root}/tok.bin {}", out.display()),
            );
            assert_eq!(sha256(&out), seed, "root:// with aud {aud}");
            let out = w.scratch(&format!("ok-{k}-{n}.davs"));
            w.client_ok(
                "",
                &format!(
                    "davix-get --capath {trust} -H 'Authorization: Bearer {tok}' \
                     {vip_davs}/tok.bin {}",
                    out.display()
                ),
            );
            assert_eq!(sha256(&out), seed, "davs:// with aud {aud}");
        }
        let name = format!("written-{k}.bin");
        w.client_ok(
            &bearer(&tok),
            &format!(
                "xrdcp -f {} {vip_root}/{name}",
                w.scratch(&format!("ok-{k}-0.root")).display()
            ),
        );
        assert_eq!(sha256(&w.pool_file(&name)), seed, "upload with aud {aud}");
    }

    // Refused: a node's own name as audience, a forged signature, no token.
    let refused = [
        (
            "a node's own name",
            w.issuer
                .token(&format!("https://{}", node_name(0)), SCOPE_RW),
        ),
        (
            "a key the issuer never published",
            w.issuer.forged_token(VIP_AUD, SCOPE_RW),
        ),
        ("no token", String::new()),
    ];
    for (what, tok) in &refused {
        for n in 0..2 {
            let out = w.scratch(&format!("refused-{n}.bin"));
            let env = if tok.is_empty() {
                String::new()
            } else {
                bearer(tok)
            };
            let o = w.client(
                &env,
                &format!("xrdcp -f {vip_root}/tok.bin {}", out.display()),
            );
            assert!(
                !o.status.success() && !out.exists(),
                "root:// with {what} should be refused:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let auth = if tok.is_empty() {
                String::new()
            } else {
                format!("-H 'Authorization: Bearer {tok}'")
            };
            let o = w.client(
                "",
                &format!(
                    "curl -sS --capath {trust} {auth} -o /dev/null -w '%{{http_code}}' \
                     https://{VIP_HOST}:{DAVS_PORT}/data/tok.bin"
                ),
            );
            let code = String::from_utf8_lossy(&o.stdout).to_string();
            assert!(
                code == "403" || code == "401",
                "davs:// GET with {what} should be refused, got {code}"
            );
        }
        let o = w.client(
            &if tok.is_empty() {
                String::new()
            } else {
                bearer(tok)
            },
            &format!(
                "xrdcp -f {} {vip_root}/refused-upload.bin",
                w.scratch("ok-0-0.root").display()
            ),
        );
        assert!(
            !o.status.success() && !w.pool_file("refused-upload.bin").exists(),
            "an upload with {what} should be refused"
        );
    }

    // doctor on the lab's node: the VIP's both audiences are listed.
    let f = w.doctor_finding(1, "xrootd.token_audience");
    assert_eq!(f["severity"], "ok", "{f:#}");

    // The classic mistake: node rs2 lists its own name. doctor says which line to set...
    w.restart_node_xrootd(
        1,
        &scitokens_cfg(&format!("https://{0}, {0}", node_name(1))),
    );
    let f = w.doctor_finding(1, "xrootd.token_audience");
    assert_eq!(f["severity"], "error", "{f:#}");
    let fix = f["fix"].as_str().unwrap_or_default().to_string();
    let line = fix
        .lines()
        .find(|l| l.starts_with("audience = "))
        .unwrap_or_else(|| panic!("the fix names no audience line: {f:#}"))
        .to_string();
    assert_eq!(
        line,
        format!(
            "audience = https://{0}, {0}, {VIP_AUD}, {VIP_HOST}",
            node_name(1)
        ),
        "{f:#}"
    );
    assert!(
        fix.contains(&w.node_scitokens_cfg(1).display().to_string()),
        "the fix names the file: {fix}"
    );
    // ...and the real server refuses the VIP's token: what the director sends it fails.
    let tok = w.issuer.token(VIP_AUD, SCOPE_RW);
    let node_root = format!("root://{}:{ROOT_PORT}//data", node_name(1));
    let out = w.scratch("wrong-aud.bin");
    let o = w.client(
        &bearer(&tok),
        &format!("xrdcp -f {node_root}/tok.bin {}", out.display()),
    );
    assert!(
        !o.status.success(),
        "xrootd with `audience = {}` should refuse a token for {VIP_AUD}",
        node_name(1)
    );

    // The fixed case: doctor's line in [Global], xrootd restarted.
    let fixed = std::fs::read_to_string(w.node_scitokens_cfg(1))
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("audience") {
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    w.restart_node_xrootd(1, &(fixed + "\n"));
    let f = w.doctor_finding(1, "xrootd.token_audience");
    assert_eq!(f["severity"], "ok", "{f:#}");
    let out = w.scratch("fixed-aud.bin");
    w.client_ok(
        &bearer(&tok),
        &format!("xrdcp -f {node_root}/tok.bin {}", out.display()),
    );
    assert_eq!(sha256(&out), seed, "after the fix");
}
