//! XRootD's own config files, read-only, for doctor: the directives (`prefix.name args`,
//! `#` comments) of a file and of what it pulls in with `continue FILE|DIR/`, and the
//! scitokens plugin's INI file (`[Global] audience = ...`).
//!
//! Only what doctor judges is interpreted: `ofs.authlib` naming libXrdAccSciTokens and its
//! `config=` argument. `if`/`else`/`fi` blocks are not evaluated: every directive counts,
//! which can only make doctor see a plugin that one branch leaves out.

use crate::util::fs::read_regular;
use std::path::{Path, PathBuf};

/// The Debian/RHEL service units start `xrootd@NAME` with /etc/xrootd/xrootd-NAME.cfg.
pub const XROOTD_CONF_DIR: &str = "/etc/xrootd";
/// Where libXrdAccSciTokens reads its settings without a `config=` argument.
pub const SCITOKENS_DEFAULT: &str = "/etc/xrootd/scitokens.cfg";
/// A config file larger than this is not a config file.
const LIMIT: u64 = 1 << 20;
/// `continue` nesting bound (a file that continues into itself stops here).
const DEPTH: usize = 8;

/// One directive with where it was read (`file:line`).
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub source: String,
}

/// The usual XRootD configs: /etc/xrootd/xrootd-*.cfg that exist, in name order.
pub fn default_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(XROOTD_CONF_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("xrootd-") && n.ends_with(".cfg"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every directive of `path` and of the files it continues into, in order.
pub fn load(path: &Path) -> Result<Vec<Directive>, String> {
    let mut out = Vec::new();
    load_into(path, 0, &mut out)?;
    Ok(out)
}

fn load_into(path: &Path, depth: usize, out: &mut Vec<Directive>) -> Result<(), String> {
    if depth > DEPTH {
        return Err(format!(
            "{}: `continue` nests deeper than {DEPTH} files (a loop?)",
            path.display()
        ));
    }
    let text = read_regular(path, LIMIT)?;
    let text = String::from_utf8_lossy(&text);
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().map(str::to_string);
        let Some(name) = words.next() else { continue };
        let args: Vec<String> = words.collect();
        if name == "continue" {
            let Some(target) = args.first() else { continue };
            for f in continued(Path::new(target))? {
                load_into(&f, depth + 1, out)?;
            }
            continue;
        }
        out.push(Directive {
            name,
            args,
            source: format!("{}:{}", path.display(), n + 1),
        });
    }
    Ok(())
}

/// `continue DIR/` reads the directory's files in name order, skipping hidden files and
/// editor backups; `continue FILE` reads the file.
fn continued(target: &Path) -> Result<Vec<PathBuf>, String> {
    if !target.is_dir() {
        return Ok(vec![target.to_path_buf()]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(target)
        .map_err(|e| format!("cannot list {}: {e}", target.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.') && !n.ends_with('~'))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The certificate XRootD presents, as a server and as the client of a third-party copy:
/// the last `xrd.tls CERT [KEY]`, else XrdHttp's older `http.cert CERT`, with the line
/// that names it.
pub fn tls_cert(dirs: &[Directive]) -> Option<(PathBuf, String)> {
    let last = |name: &str| {
        dirs.iter()
            .rev()
            .filter(|d| d.name == name)
            .find_map(|d| Some((PathBuf::from(d.args.first()?), d.source.clone())))
    };
    last("xrd.tls").or_else(|| last("http.cert"))
}

/// The scitokens plugin an `ofs.authlib` line loads, with its config file (the `config=`
/// argument, else the default) and where the line is.
#[derive(Debug, Clone, PartialEq)]
pub struct SciTokens {
    pub config: PathBuf,
    pub source: String,
}

pub fn scitokens(dirs: &[Directive]) -> Option<SciTokens> {
    dirs.iter()
        .filter(|d| d.name == "ofs.authlib")
        .find_map(|d| {
            let lib = d.args.iter().position(|a| {
                Path::new(a)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libXrdAccSciTokens"))
            })?;
            let config = d.args[lib + 1..]
                .iter()
                .find_map(|a| a.strip_prefix("config="))
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(SCITOKENS_DEFAULT));
            Some(SciTokens {
                config,
                source: d.source.clone(),
            })
        })
}

/// The audiences a scitokens.cfg accepts: `audience` (comma or space separated) and
/// `audience_json` (a JSON list) in `[Global]`, each with the line it was read from.
/// Returns also the line number of the `[Global]` header, if any.
pub fn audiences(text: &str) -> (Vec<String>, Option<usize>) {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut global = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_string();
            if section == "Global" {
                global = Some(n + 1);
            }
            continue;
        }
        if section != "Global" {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "audience" => out.extend(
                v.split([',', ' ', '\t'])
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string),
            ),
            "audience_json" => {
                if let Ok(serde_json::Value::Array(a)) = serde_json::from_str(v.trim()) {
                    out.extend(a.iter().filter_map(|x| x.as_str()).map(str::to_string));
                }
            }
            _ => {}
        }
    }
    (out, global)
}

/// The host an audience names: the audience itself when it is a bare name, the URL's host
/// when it is a URL (`https://host:port/path`).
pub fn audience_host(aud: &str) -> &str {
    let rest = match aud.split_once("://") {
        Some((_, r)) => r,
        None => return aud,
    };
    let hostport = rest.split('/').next().unwrap_or("");
    match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.split(':').next().unwrap_or(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_xrd_tls_names_the_certificate() {
        let d = |name: &str, args: &[&str], line: u32| Directive {
            name: name.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            source: format!("x.cfg:{line}"),
        };
        let http = d("http.cert", &["/etc/old.pem"], 1);
        assert_eq!(
            tls_cert(std::slice::from_ref(&http)),
            Some((PathBuf::from("/etc/old.pem"), "x.cfg:1".into()))
        );
        let dirs = [
            http,
            d("xrd.tls", &["/etc/a.pem", "/etc/a.key"], 2),
            d("xrd.tls", &[], 3),
            d("xrd.tls", &["/etc/b.pem"], 4),
        ];
        assert_eq!(
            tls_cert(&dirs),
            Some((PathBuf::from("/etc/b.pem"), "x.cfg:4".into()))
        );
    }

    #[test]
    fn follows_continue_and_finds_the_scitokens_config() {
        let d = std::env::temp_dir().join(format!("xrdconf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("config.d")).unwrap();
        std::fs::write(
            d.join("main.cfg"),
            format!(
                "all.export /data # comment\nxrd.port 1094\ncontinue {}/\n",
                d.join("config.d").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("config.d/50-tokens.cfg"),
            "ofs.authorize 1\nofs.authlib ++ /usr/lib/libXrdAccSciTokens.so config=/etc/st.cfg\n",
        )
        .unwrap();
        std::fs::write(
            d.join("config.d/.hidden"),
            "ofs.authlib libXrdAccSciTokens.so\n",
        )
        .unwrap();
        let dirs = load(&d.join("main.cfg")).unwrap();
        assert_eq!(dirs.len(), 4, "{dirs:?}");
        assert_eq!(tls_cert(&dirs), None);
        let st = scitokens(&dirs).unwrap();
        assert_eq!(st.config, PathBuf::from("/etc/st.cfg"));
        assert!(st.source.ends_with("50-tokens.cfg:2"), "{}", st.source);
        // Without config= the plugin reads its default file.
        let d2 = vec![Directive {
            name: "ofs.authlib".into(),
            args: vec!["libXrdAccSciTokens.so".into()],
            source: "x:1".into(),
        }];
        assert_eq!(
            scitokens(&d2).unwrap().config,
            PathBuf::from(SCITOKENS_DEFAULT)
        );
        // A loop is refused, not followed forever.
        std::fs::write(
            d.join("loop.cfg"),
            format!("continue {}\n", d.join("loop.cfg").display()),
        )
        .unwrap();
        assert!(load(&d.join("loop.cfg"))
            .unwrap_err()
            .contains("nests deeper"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn audiences_of_global_only() {
        let (a, g) = audiences(
            "# c\n[Global]\naudience = https://xrootd.lab, xrootd.lab\n\
             audience_json = [\"roots://xrootd.lab:1094\"]\n[Issuer x]\naudience = other\n",
        );
        assert_eq!(
            a,
            [
                "https://xrootd.lab",
                "xrootd.lab",
                "roots://xrootd.lab:1094"
            ]
        );
        assert_eq!(g, Some(2));
        assert_eq!(audiences("[Issuer x]\nissuer = y\n"), (vec![], None));
    }

    #[test]
    fn audience_hosts() {
        assert_eq!(audience_host("xrootd.lab"), "xrootd.lab");
        assert_eq!(audience_host("https://xrootd.lab"), "xrootd.lab");
        assert_eq!(audience_host("https://xrootd.lab:8443/data"), "xrootd.lab");
        assert_eq!(audience_host("https://[2001:db8::1]:8443"), "2001:db8::1");
    }
}
