//! docs/xrootd-webdav.md is held to the lab tests that run it (wlcg_transfers.rs,
//! wlcg_tokens.rs, wlcg_macaroons.rs and tests/src/wlcg.rs):
//! - every command of its `sh` blocks: the program (for `lvs-node` and `lvs-cert`, the
//!   subcommand) and each of its options appear together in those sources, so a command
//!   the page shows with an option no test passes fails here;
//! - every package it installs is in tests/setup.sh;
//! - its XRootD config and scitokens.cfg blocks are, byte for byte, what the lab writes
//!   (`xrootd_cfg`, `scitokens_cfg` with the page's paths);
//! - every key of its TOML blocks is one the lab's node config sets.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The fenced blocks of `md` with the given info string.
fn blocks(md: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for l in md.lines() {
        match &mut cur {
            None if l.trim_end() == format!("```{lang}") => cur = Some(String::new()),
            Some(b) if l.trim_end() == "```" => {
                out.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(l);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Shell words, with quotes kept out: (word, was it quoted).
fn words(line: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut q: Option<char> = None;
    for c in line.chars() {
        match q {
            Some(open) if c == open => q = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                q = Some(c);
                quoted = true;
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() || quoted {
                    out.push((std::mem::take(&mut cur), quoted));
                }
                quoted = false;
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() || quoted {
        out.push((cur, quoted));
    }
    out
}

/// What a command must be found with: a key to find it by and the options around it.
fn requirements(cmd: &[(String, bool)]) -> Option<(String, Vec<String>)> {
    let mut w: Vec<&(String, bool)> = cmd
        .iter()
        .skip_while(|(s, q)| !q && s.contains('=') && !s.starts_with('-'))
        .collect();
    if w.is_empty() {
        return None;
    }
    let prog = w.remove(0).0.clone();
    let flags: Vec<String> = w
        .iter()
        .filter(|(s, q)| !q && s.starts_with('-') && s.len() > 1)
        .map(|(s, _)| s.split('=').next().unwrap().to_string())
        .collect();
    if prog == "lvs-node" || prog == "lvs-cert" {
        // The subcommand: the plain words that are not an option's value.
        let mut sub = Vec::new();
        let mut skip = false;
        for (s, q) in &w {
            if skip {
                skip = false;
                continue;
            }
            if s == "-c" || s == "--config" {
                skip = true;
                continue;
            }
            if !q && !s.starts_with('-') && !s.contains(['/', '.', ':', '=']) && sub.len() < 2 {
                sub.push(s.clone());
            } else if !sub.is_empty() {
                break;
            }
        }
        let global = ["-c", "--config", "-v"];
        let flags = flags
            .into_iter()
            .filter(|f| !global.contains(&f.as_str()))
            .collect();
        return Some((sub.join(" "), flags));
    }
    let key = match w.first() {
        Some((s, false)) if s.starts_with('-') || prog == "openssl" => format!("{prog} {s}"),
        _ => prog,
    };
    Some((key, flags))
}

fn sources() -> String {
    let r = repo();
    let mut s = std::fs::read_to_string(r.join("tests/src/wlcg.rs")).unwrap();
    for t in ["wlcg_transfers.rs", "wlcg_tokens.rs", "wlcg_macaroons.rs"] {
        s.push_str(&std::fs::read_to_string(r.join("tests/tests").join(t)).unwrap());
    }
    s
}

/// Is `key` somewhere in `src` with every one of `flags` within 500 bytes around it?
fn found(src: &str, key: &str, flags: &[String]) -> bool {
    src.match_indices(key).any(|(i, _)| {
        let lo = src.floor_char_boundary(i.saturating_sub(500));
        let hi = src.ceil_char_boundary((i + key.len() + 500).min(src.len()));
        let win = &src[lo..hi];
        flags.iter().all(|f| {
            win.match_indices(f.as_str()).any(|(j, _)| {
                let next = win[j + f.len()..].chars().next();
                !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        })
    })
}

fn doc() -> String {
    std::fs::read_to_string(repo().join("docs/xrootd-webdav.md")).unwrap()
}

#[test]
fn every_command_of_the_page_runs_in_a_test() {
    let src = sources();
    let setup = std::fs::read_to_string(repo().join("tests/setup.sh")).unwrap();
    let mut missing = Vec::new();
    let mut n = 0;
    for b in blocks(&doc(), "sh") {
        for line in b
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let w = words(line);
            if w.first().is_some_and(|(s, _)| s == "apt-get") {
                for (p, _) in w.iter().skip(2).filter(|(s, _)| !s.starts_with('-')) {
                    if !setup.contains(p.as_str()) {
                        missing.push(format!("package {p} is not in tests/setup.sh"));
                    }
                }
                continue;
            }
            // A pipeline or redirection: each command on its own.
            for cmd in w.split(|(s, q)| !q && (s == "|" || s == ">")) {
                let Some((key, flags)) = requirements(cmd) else {
                    continue;
                };
                if key.is_empty() || cmd.first().is_some_and(|(s, _)| s.starts_with('/')) {
                    continue;
                }
                n += 1;
                if !found(&src, &key, &flags) {
                    missing.push(format!("`{key}` with {flags:?} (from: {line})"));
                }
            }
        }
    }
    assert!(n >= 20, "only {n} commands found in docs/xrootd-webdav.md");
    assert!(
        missing.is_empty(),
        "docs/xrootd-webdav.md shows commands no lab test runs:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_configs_of_the_page_are_the_labs() {
    let d = doc();
    let x = blocks(&d, "xrootd");
    assert_eq!(x.len(), 1, "one xrootd config block");
    assert_eq!(
        x[0],
        lab::wlcg::xrootd_cfg(
            Path::new("/etc/xrootd"),
            Path::new("/srv/xrootd"),
            Path::new("/etc/grid-security/certificates")
        ),
        "the page's XRootD config is not the lab's"
    );
    let ini = blocks(&d, "ini");
    assert_eq!(ini.len(), 1, "one scitokens.cfg block");
    assert_eq!(
        ini[0],
        lab::wlcg::scitokens_cfg(&format!("{}, {}", lab::wlcg::VIP_AUD, lab::wlcg::VIP_HOST)),
        "the page's scitokens.cfg is not the lab's"
    );
    let node = std::fs::read_to_string(repo().join("tests/src/wlcg.rs")).unwrap();
    for b in blocks(&d, "toml") {
        for l in b.lines() {
            let Some((k, _)) = l.split_once(" = ") else {
                continue;
            };
            assert!(
                node.contains(&format!("{} = ", k.trim())),
                "the page's node config sets `{k}`, the lab's does not"
            );
        }
    }
}

#[test]
fn the_checker_finds_a_missing_option() {
    // An option no test passes is reported.
    let src = "xrdcp -f root://x//data/f f";
    let (k, f) = requirements(&words("xrdcp -f --nonexistent root://x f")).unwrap();
    assert!(!found(src, &k, &f));
    let (k, f) = requirements(&words("BEARER_TOKEN=$T xrdcp -f root://x f")).unwrap();
    assert_eq!(k, "xrdcp -f");
    assert!(found(src, &k, &f));
    let (k, f) = requirements(&words(
        "lvs-node -c /etc/n.toml doctor --xrootd-conf /etc/x.cfg",
    ))
    .unwrap();
    assert_eq!(
        (k.as_str(), f),
        ("doctor", vec!["--xrootd-conf".to_string()])
    );
}
