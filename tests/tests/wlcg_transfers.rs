//! WLCG transfers through the VIP of a REAL IPVS director (qemu guest, keepalived loaded
//! with `lvs-node director-config --pool` as printed): two XRootD 5.5.3 nodes serving
//! `root://` and `davs://`, token-only, with real clients (xrdcp, gfal-copy, davix, curl).
//!
//! - downloads and uploads through the VIP over `root://` and `davs://`, spread over both
//!   nodes by IPVS;
//! - uploads through the agent's `[[redirect]]` on the VIP: the payload goes to a node's
//!   own name and only the request heads cross the director (IPVS InBytes);
//! - HTTP third-party copy (`COPY`) in pull and push mode with the VIP as one end and
//!   another site as the other, with per-endpoint tokens in `Authorization` and
//!   `TransferHeaderAuthorization` as FTS sends them, and with gfal-copy
//!   `--copy-mode pull|push`.
//!
//! Every byte is checked with sha256. The lab is tests/src/wlcg.rs.

use lab::gridftp::sha256;
use lab::wlcg::*;

fn bearer(t: &str) -> String {
    format!("BEARER_TOKEN={t}")
}

#[test]
fn root_and_davs_transfers_redirected_uploads_and_tpc_through_the_ipvs_vip() {
    let w = WlcgLab::build("wlcgxfer");
    let trust = w.pki.trust.0.display().to_string();
    let tok = w.issuer.token(VIP_AUD, SCOPE_RW);
    let site_tok = w.issuer.token(SITE_AUD, SCOPE_RW);
    let seed = w.seed_pool("seed.bin", 4 << 20);
    let src = w.scratch("src.bin");
    let src_sum = random_file(&src, 6 << 20);
    let vip_root = format!("root://{VIP_HOST}:{ROOT_PORT}//data");
    let vip_davs = format!("davs://{VIP_HOST}:{DAVS_PORT}/data");
    let vip_https = format!("https://{VIP_HOST}:{DAVS_PORT}/data");

    // Downloads through the VIP: xrdcp and gfal-copy over root://, davix-get and gfal-copy
    // over davs://. Each one intact.
    for k in 0..3 {
        let out = w.scratch(&format!("dl-root-{k}.bin"));
        w.client_ok(
            &bearer(&tok),
            &format!("xrdcp -f {vip_root}/seed.bin {}", out.display()),
        );
        assert_eq!(sha256(&out), seed, "xrdcp download {k}");
        let out = w.scratch(&format!("dl-davs-{k}.bin"));
        w.client_ok(
            "",
            &format!(
                "davix-get --capath {trust} -H 'Authorization: Bearer {tok}' {vip_davs}/seed.bin {}",
                out.display()
            ),
        );
        assert_eq!(sha256(&out), seed, "davix-get download {k}");
    }
    for (scheme, url) in [("root", &vip_root), ("davs", &vip_davs)] {
        let out = w.scratch(&format!("dl-gfal-{scheme}.bin"));
        w.client_ok(
            &bearer(&tok),
            &format!("gfal-copy -f {url}/seed.bin file://{}", out.display()),
        );
        assert_eq!(sha256(&out), seed, "gfal-copy {scheme}:// download");
    }
    // IPVS spread the connections over both nodes on both ports.
    for port in [ROOT_PORT, DAVS_PORT] {
        let per: Vec<u64> = (0..2).map(|i| w.ipvs_conns(i, port)).collect();
        assert!(
            per.iter().all(|&n| n > 0),
            "IPVS should have sent connections on {port} to both nodes: {per:?}\n{}",
            w.lab.director.ipvsadm_stats()
        );
    }

    // Uploads through the VIP (the payload crosses the director): xrdcp and gfal-copy
    // over root://, davix-put and gfal-copy over davs://.
    w.client_ok(
        &bearer(&tok),
        &format!("xrdcp -f {} {vip_root}/up-xrdcp.bin", src.display()),
    );
    w.client_ok(
        &bearer(&tok),
        &format!(
            "gfal-copy -f file://{} {vip_root}/up-gfal-root.bin",
            src.display()
        ),
    );
    w.client_ok(
        "",
        &format!(
            "davix-put --capath {trust} -H 'Authorization: Bearer {tok}' {} {vip_davs}/up-davix.bin",
            src.display()
        ),
    );
    w.client_ok(
        &bearer(&tok),
        &format!(
            "gfal-copy -f file://{} {vip_davs}/up-gfal-davs.bin",
            src.display()
        ),
    );
    for f in [
        "up-xrdcp.bin",
        "up-gfal-root.bin",
        "up-davix.bin",
        "up-gfal-davs.bin",
    ] {
        assert_eq!(sha256(&w.pool_file(f)), src_sum, "upload {f} not intact");
    }

    // Uploads through [[redirect]] on VIP:UPLOAD_PORT: 307 to https://rsN.lab:8443, the
    // payload goes to the node. curl needs --location-trusted to send the token again to
    // the node's name; davix and gfal keep it.
    let before = w.ipvs_in_bytes(UPLOAD_PORT);
    let up = format!("https://{VIP_HOST}:{UPLOAD_PORT}/data");
    let o = w.client_ok(
        "",
        &format!(
            "curl -sS --capath {trust} --location-trusted -H 'Authorization: Bearer {tok}' -T {} -o /dev/null \
             -w '%{{http_code}} %{{num_redirects}} %{{url_effective}}' {up}/redir-curl.bin",
            src.display()
        ),
    );
    let mut words = o.split_whitespace();
    // XrdHttp 5.5 answers a completed PUT with 200 (newer releases with 201).
    assert!(
        matches!(words.next(), Some("200" | "201")),
        "the PUT should succeed at the node: {o}"
    );
    assert_eq!(words.next(), Some("1"), "one redirect: {o}");
    let effective = words.next().unwrap_or_default();
    assert!(
        (0..2)
            .any(|i| effective
                == format!("https://{}:{DAVS_PORT}/data/redir-curl.bin", node_name(i))),
        "the upload should end at a node's own name: {o}"
    );
    w.client_ok(
        "",
        &format!(
            "davix-put --capath {trust} -H 'Authorization: Bearer {tok}' {} davs://{VIP_HOST}:{UPLOAD_PORT}/data/redir-davix.bin",
            src.display()
        ),
    );
    w.client_ok(
        &bearer(&tok),
        &format!(
            "gfal-copy -f file://{} davs://{VIP_HOST}:{UPLOAD_PORT}/data/redir-gfal.bin",
            src.display()
        ),
    );
    for f in ["redir-curl.bin", "redir-davix.bin", "redir-gfal.bin"] {
        assert_eq!(sha256(&w.pool_file(f)), src_sum, "redirected upload {f}");
    }
    let through = w.ipvs_in_bytes(UPLOAD_PORT) - before;
    assert!(
        through < 256 * 1024,
        "{through} bytes crossed the director for three 6 MiB uploads through the redirect\n{}",
        w.lab.director.ipvsadm_stats()
    );
    eprintln!("director InBytes on {UPLOAD_PORT} for 3 x 6 MiB redirected uploads: {through}");

    // HTTP-TPC as FTS drives it: COPY with a token per endpoint, each for its audience.
    let site_src = w.seed_site("site-src.bin", 5 << 20);
    let site_https = format!("https://{SITE_HOST}:{DAVS_PORT}/data");
    let copy = |target: &str, header: &str, bearer_for_target: &str, transfer_tok: &str| {
        let o = w.client_ok(
            "",
            &format!(
                "curl -sS --capath {trust} -X COPY -H 'Authorization: Bearer {bearer_for_target}' \
                 -H 'TransferHeaderAuthorization: Bearer {transfer_tok}' -H '{header}' \
                 -w '\\n%{{http_code}}' {target}"
            ),
        );
        assert!(
            o.trim_end().ends_with("201") && o.contains("success: Created"),
            "COPY {target} ({header}) did not succeed:\n{o}\n{}",
            w.logs()
        );
    };
    // Pull into the VIP: the node the director picked fetches from the site.
    copy(
        &format!("{vip_https}/tpc-pull-in.bin"),
        &format!("Source: {site_https}/site-src.bin"),
        &tok,
        &site_tok,
    );
    assert_eq!(
        sha256(&w.pool_file("tpc-pull-in.bin")),
        site_src,
        "pull into the VIP"
    );
    // Push from the VIP: the node sends the pool's file to the site.
    copy(
        &format!("{vip_https}/seed.bin"),
        &format!("Destination: {site_https}/tpc-push-out.bin"),
        &tok,
        &site_tok,
    );
    assert_eq!(
        sha256(&w.site_file("tpc-push-out.bin")),
        seed,
        "push from the VIP"
    );
    // Pull from the VIP: the site fetches through the director.
    copy(
        &format!("{site_https}/tpc-pull-out.bin"),
        &format!("Source: {vip_https}/seed.bin"),
        &site_tok,
        &tok,
    );
    assert_eq!(
        sha256(&w.site_file("tpc-pull-out.bin")),
        seed,
        "pull from the VIP"
    );
    // Push to the VIP: the site sends through the director.
    copy(
        &format!("{site_https}/site-src.bin"),
        &format!("Destination: {vip_https}/tpc-push-in.bin"),
        &site_tok,
        &tok,
    );
    assert_eq!(
        sha256(&w.pool_file("tpc-push-in.bin")),
        site_src,
        "push to the VIP"
    );

    // gfal-copy --copy-mode pull|push between the VIP and the site. gfal-copy hands one
    // BEARER_TOKEN to both ends, so this token carries the WLCG "any" audience.
    let any = w.issuer.token(ANY_AUD, SCOPE_RW);
    for mode in ["pull", "push"] {
        let o = w.client_ok(
            &bearer(&any),
            &format!(
                "gfal-copy -v -f --copy-mode {mode} {vip_davs}/seed.bin davs://{SITE_HOST}:{DAVS_PORT}/data/gfal-{mode}.bin"
            ),
        );
        assert!(
            o.contains(&format!("TRANSFER:TYPE\t3rd {mode}")),
            "gfal-copy did not do a {mode} third-party copy:\n{o}"
        );
        assert_eq!(
            sha256(&w.site_file(&format!("gfal-{mode}.bin"))),
            seed,
            "gfal-copy {mode}"
        );
    }
}
