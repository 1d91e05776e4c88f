//! The GridFTP server's own configuration, as the host has it: its config files (`key value`
//! lines, `#` comments, `$VAR value` sets an environment variable), its service environment
//! file (`KEY=value`), and where they live. doctor, the Nagios plugin and the firewalld
//! service files all read it from here.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Where the GridFTP side of the host keeps its files (overridable for tests).
#[derive(Debug, Clone)]
pub struct Paths {
    /// GridFTP config files in load order (later ones win).
    pub gridftp_conf: Vec<PathBuf>,
    /// The service's environment file, if one exists.
    pub sysconfig: Option<PathBuf>,
    /// An explicit host certificate (else X509_USER_CERT, else the defaults).
    pub cert: Option<PathBuf>,
    /// XRootD config files (the usual /etc/xrootd/xrootd-*.cfg unless named).
    pub xrootd_conf: Vec<PathBuf>,
}

pub const GRIDFTP_CONF: &str = "/etc/gridftp.conf";
pub const GRIDFTP_CONF_DIR: &str = "/etc/gridftp.d";
pub const SYSCONFIG: [&str; 2] = [
    "/etc/sysconfig/globus-gridftp-server",
    "/etc/default/globus-gridftp-server",
];
pub const DEFAULT_CERTS: [&str; 2] = [
    "/etc/grid-security/gridftp/gridftp-hostcert.pem",
    "/etc/grid-security/hostcert.pem",
];

impl Paths {
    /// The files named (`--gridftp-conf`, `--sysconfig`, `--cert`), else the usual places.
    pub fn new(gridftp_conf: &[PathBuf], sysconfig: Option<&Path>, cert: Option<&Path>) -> Paths {
        let gridftp_conf = if gridftp_conf.is_empty() {
            default_files(Path::new(GRIDFTP_CONF), Path::new(GRIDFTP_CONF_DIR))
        } else {
            gridftp_conf.to_vec()
        };
        let sysconfig = sysconfig
            .map(Path::to_path_buf)
            .or_else(|| SYSCONFIG.iter().map(PathBuf::from).find(|p| p.is_file()));
        Paths {
            gridftp_conf,
            sysconfig,
            cert: cert.map(Path::to_path_buf),
            xrootd_conf: crate::site::xrootd_conf::default_files(),
        }
    }

    /// The usual places only.
    pub fn host() -> Paths {
        Paths::new(&[], None, None)
    }
}

/// One value and where it came from (`/etc/gridftp.conf:12`).
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub value: String,
    pub source: String,
}

#[derive(Debug, Clone, Default)]
pub struct GridftpSettings {
    /// Config files that were read.
    pub files: Vec<PathBuf>,
    /// Config files named but absent or unreadable.
    pub missing: Vec<PathBuf>,
    /// Keys from the config files (last one wins); `$VAR` keys keep their `$`.
    pub conf: BTreeMap<String, Setting>,
    /// Variables from the environment file.
    pub env: BTreeMap<String, Setting>,
    pub sysconfig: Option<PathBuf>,
}

/// The load order of globus-gridftp-server: the files of the config directory in
/// alphabetical order (backups and package leftovers skipped), then the main file last.
pub fn default_files(main: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    !(n.starts_with('.')
                        || n.ends_with('~')
                        || [
                            ".rpmsave",
                            ".rpmnew",
                            ".rpmorig",
                            ".bak",
                            ".dpkg-old",
                            ".dpkg-new",
                            ".dpkg-dist",
                        ]
                        .iter()
                        .any(|s| n.ends_with(s)))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.push(main.to_path_buf());
    v
}

/// Parses `key value` lines; returns (key, value, line number).
pub fn parse_conf(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (k, v) = match l.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (l, ""),
        };
        let v = v.trim_matches('"').to_string();
        out.push((k.to_string(), v, i + 1));
    }
    out
}

/// Parses a shell-style environment file (`KEY=value`, `export KEY="value"`).
pub fn parse_env(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l).trim();
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string(), i + 1));
    }
    out
}

/// `START,END` (GridFTP's format; a space is tolerated).
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once(',')
        .or_else(|| s.trim().split_once(char::is_whitespace))
        .ok_or_else(|| format!("`{s}` is not START,END"))?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not START,END"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not START,END"))?;
    if a == 0 || b < a {
        return Err(format!(
            "`{s}`: START must be 1 or more and END at least START"
        ));
    }
    Ok((a, b))
}

impl GridftpSettings {
    pub fn load(files: &[PathBuf], sysconfig: Option<&Path>) -> GridftpSettings {
        let mut s = GridftpSettings::default();
        for f in files {
            match std::fs::read_to_string(f) {
                Ok(text) => {
                    for (k, v, n) in parse_conf(&text) {
                        s.conf.insert(
                            k,
                            Setting {
                                value: v,
                                source: format!("{}:{n}", f.display()),
                            },
                        );
                    }
                    s.files.push(f.clone());
                }
                Err(_) => s.missing.push(f.clone()),
            }
        }
        if let Some(p) = sysconfig {
            if let Ok(text) = std::fs::read_to_string(p) {
                for (k, v, n) in parse_env(&text) {
                    s.env.insert(
                        k,
                        Setting {
                            value: v,
                            source: format!("{}:{n}", p.display()),
                        },
                    );
                }
                s.sysconfig = Some(p.to_path_buf());
            }
        }
        s
    }

    pub fn conf(&self, k: &str) -> Option<&Setting> {
        self.conf.get(k).filter(|s| !s.value.is_empty())
    }

    /// An environment variable as the server sees it: `$VAR` in a config file, else the
    /// environment file.
    pub fn env_var(&self, k: &str) -> Option<&Setting> {
        self.conf(&format!("${k}"))
            .or_else(|| self.env.get(k).filter(|s| !s.value.is_empty()))
    }

    /// The data port range and where it is set (`port_range` wins over the variable).
    pub fn port_range(&self) -> Option<(&'static str, &Setting)> {
        self.conf("port_range")
            .map(|s| ("port_range", s))
            .or_else(|| {
                self.env_var("GLOBUS_TCP_PORT_RANGE")
                    .map(|s| ("GLOBUS_TCP_PORT_RANGE", s))
            })
    }

    /// The address passive replies advertise, when configured: `data_interface`, else
    /// `hostname` (which sets control, data and ipc interfaces).
    pub fn data_interface(&self) -> Option<(&'static str, &Setting)> {
        self.conf("data_interface")
            .map(|s| ("data_interface", s))
            .or_else(|| self.conf("hostname").map(|s| ("hostname", s)))
    }

    /// The host name GridFTP uses for itself: `hostname`, else None (the system hostname).
    pub fn hostname(&self) -> Option<&Setting> {
        self.conf("hostname")
    }

    pub fn x509_user_cert(&self) -> Option<&Setting> {
        self.env_var("X509_USER_CERT")
    }

    pub fn files_text(&self) -> String {
        if self.files.is_empty() {
            "none".into()
        } else {
            self.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// Resolves an address or host name (blocking; the resolver's own timeouts apply).
pub fn resolve(name: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut v: Vec<IpAddr> = (name, 0u16)
        .to_socket_addrs()
        .map_err(|e| format!("`{name}` does not resolve: {e}"))?
        .map(|a| a.ip())
        .collect();
    v.dedup();
    if v.is_empty() {
        return Err(format!("`{name}` resolves to nothing"));
    }
    Ok(v)
}
