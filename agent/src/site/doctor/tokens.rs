//! `xrootd.token_audience`: a node behind the VIP must accept tokens issued for the VIP.
//!
//! Clients and FTS ask the issuer for a token whose `aud` claim names the endpoint they
//! address: the VIP's URL (`https://VIP-NAME`) or its host name. libXrdAccSciTokens compares
//! that claim, as an exact string, with the `audience` list of its config's `[Global]`
//! section and refuses the token otherwise. A node configured with its own name, or only the
//! WLCG "any" audience, serves every request that reaches it by its own name and refuses
//! every token-authenticated one that arrives through the director.

use super::Finding;
use crate::site::xrootd_conf::{audience_host, audiences, load, scitokens};
use crate::util::fs::read_regular;
use lvs_shared::config::NodeConfig;
use std::path::PathBuf;

pub const ID: &str = "xrootd.token_audience";

pub fn findings(cfg: &NodeConfig, files: &[PathBuf]) -> Vec<Finding> {
    let hosts: Vec<String> = cfg.vips.iter().filter_map(|v| v.hostname.clone()).collect();
    let mut out = Vec::new();
    let mut with_tokens = 0;
    for file in files {
        let dirs = match load(file) {
            Ok(d) => d,
            Err(e) => {
                out.push(Finding::error(
                    ID,
                    format!("cannot read the XRootD config {}", file.display()),
                    e,
                    "fix the file, or name the config xrootd runs with --xrootd-conf PATH",
                ));
                continue;
            }
        };
        let Some(st) = scitokens(&dirs) else { continue };
        with_tokens += 1;
        out.push(judge(file, &st.config, &st.source, &hosts));
    }
    if with_tokens == 0 && out.is_empty() {
        let looked = if files.is_empty() {
            "no XRootD config found (/etc/xrootd/xrootd-*.cfg)".to_string()
        } else {
            format!(
                "{} load no libXrdAccSciTokens",
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push(Finding::ok(ID, "XRootD does not check tokens here", looked));
    }
    out
}

fn judge(file: &std::path::Path, st: &std::path::Path, source: &str, hosts: &[String]) -> Finding {
    let text = match read_regular(st, 1 << 20) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) => {
            return Finding::error(
                ID,
                format!("the scitokens config {} cannot be read", st.display()),
                format!(
                    "{e}\n{source} loads libXrdAccSciTokens with it: without it xrootd refuses \
                     every token"
                ),
                format!(
                    "create {} with a [Global] section and `audience = ...`, see \
                     docs/xrootd-webdav.md",
                    st.display()
                ),
            )
        }
    };
    if hosts.is_empty() {
        return Finding::warn(
            ID,
            "no [[vip]] hostname: cannot say which audience clients' tokens carry",
            format!(
                "{} checks tokens ({source}); clients ask for tokens for the VIP's name",
                file.display()
            ),
            "set `hostname = \"VIP-NAME\"` in each [[vip]] of this node's config",
        );
    }
    let (auds, _) = audiences(&text);
    let listed = if auds.is_empty() {
        "no audience".to_string()
    } else {
        format!("audience = {}", auds.join(", "))
    };
    let mut missing = Vec::new();
    for h in hosts {
        let names_h = |a: &&String| audience_host(a).eq_ignore_ascii_case(h);
        let url = auds.iter().filter(names_h).any(|a| a.contains("://"));
        let bare = auds.iter().filter(names_h).any(|a| !a.contains("://"));
        if !url {
            missing.push(format!("https://{h}"));
        }
        if !bare {
            missing.push(h.clone());
        }
    }
    if missing.is_empty() {
        return Finding::ok(
            ID,
            format!(
                "tokens for the VIP ({}) are accepted by {}",
                hosts.join(", "),
                st.display()
            ),
            format!("{listed} (loaded by {source})"),
        );
    }
    let mut line: Vec<String> = auds.clone();
    line.extend(missing.iter().cloned());
    let fix = format!(
        "in [Global] of {}, set:\naudience = {}\nthen restart xrootd",
        st.display(),
        line.join(", ")
    );
    // No audience of the VIP at all: every token-authenticated request through the
    // director is refused. One of its two forms only: tokens of the other form are.
    let none = hosts.iter().all(|h| {
        !auds
            .iter()
            .any(|a| audience_host(a).eq_ignore_ascii_case(h))
    });
    let detail = format!(
        "{} has {listed} (its plugin is loaded at {source}). A token's aud must equal one of \
         them exactly; clients address the VIP, so their tokens name it: {}.",
        st.display(),
        missing.join(", ")
    );
    if none {
        Finding::error(
            ID,
            format!(
                "xrootd would refuse tokens issued for the VIP ({})",
                hosts.join(", ")
            ),
            detail,
            fix,
        )
    } else {
        Finding::warn(
            ID,
            format!(
                "xrootd would refuse tokens with the audience {}",
                missing.join(", ")
            ),
            detail,
            fix,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::doctor::Severity;

    fn cfg(host: &str) -> NodeConfig {
        let d = std::env::temp_dir().join(format!("tok-{}-{host}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("node.toml");
        std::fs::write(
            &p,
            format!(
                "interface = \"lo\"\n[[vip]]\naddress = \"192.0.2.100\"\nports = [1094]\nhostname = \"{host}\"\n"
            ),
        )
        .unwrap();
        NodeConfig::load(&p).unwrap()
    }

    fn run(scitokens_cfg: &str) -> Finding {
        let d = std::env::temp_dir().join(format!(
            "tokcfg-{}-{}",
            std::process::id(),
            scitokens_cfg.len()
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("st.cfg"), scitokens_cfg).unwrap();
        std::fs::write(
            d.join("x.cfg"),
            format!(
                "ofs.authlib libXrdAccSciTokens.so config={}\n",
                d.join("st.cfg").display()
            ),
        )
        .unwrap();
        let mut f = findings(&cfg("xrootd.lab"), &[d.join("x.cfg")]);
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(f.len(), 1, "{f:?}");
        f.remove(0)
    }

    #[test]
    fn both_forms_ok_one_form_warns_none_fails_with_the_line() {
        let ok = run("[Global]\naudience = https://xrootd.lab, xrootd.lab\n");
        assert_eq!(ok.severity, Severity::Ok, "{ok:?}");
        let one = run("[Global]\naudience = https://xrootd.lab:8443\n");
        assert_eq!(one.severity, Severity::Warn, "{one:?}");
        assert!(
            one.fix
                .as_ref()
                .unwrap()
                .contains("audience = https://xrootd.lab:8443, xrootd.lab"),
            "{one:?}"
        );
        let node = run("[Global]\naudience = https://rs1.lab, rs1.lab\n");
        assert_eq!(node.severity, Severity::Error, "{node:?}");
        assert!(
            node.fix
                .as_ref()
                .unwrap()
                .contains("audience = https://rs1.lab, rs1.lab, https://xrootd.lab, xrootd.lab"),
            "{node:?}"
        );
        let none = run("[Issuer x]\nissuer = https://issuer.lab\n");
        assert_eq!(none.severity, Severity::Error, "{none:?}");
    }

    #[test]
    fn no_scitokens_plugin_is_ok_and_a_missing_plugin_config_fails() {
        let d = std::env::temp_dir().join(format!("tokno-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.cfg"), "all.export /data\n").unwrap();
        std::fs::write(
            d.join("b.cfg"),
            format!(
                "ofs.authlib libXrdAccSciTokens.so config={}/none.cfg\n",
                d.display()
            ),
        )
        .unwrap();
        let c = cfg("xrootd.lab");
        let a = findings(&c, &[d.join("a.cfg")]);
        assert_eq!(a[0].severity, Severity::Ok, "{a:?}");
        let b = findings(&c, &[d.join("b.cfg")]);
        assert_eq!(b[0].severity, Severity::Error, "{b:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
