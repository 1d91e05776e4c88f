//! The pool's names: the VIP hostname and the nodes, from flags or the OSG batch file
//! `load-balanced-hosts.txt` (`<NODE-HOSTNAME> <VIRTUAL-HOSTNAME>` per line), and the
//! certificates they make: one shared (CN = VIP) or one per node for XRootD (CN = node).

use crate::error::usage;
use anyhow::Result;
use lvs_shared::hostname;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub vip: String,
    pub nodes: Vec<String>,
}

/// One certificate to make: `names[0]` is the CN and the first SAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    pub label: String,
    pub names: Vec<String>,
}

impl Pool {
    /// Builds and validates the pool. Every error is a usage error naming the flag or line.
    pub fn new(vip: Option<&str>, alts: &[String], hosts_file: Option<&Path>) -> Result<Pool> {
        let mut vip = vip.map(str::to_string);
        let mut nodes: Vec<String> = alts.to_vec();
        if let Some(f) = hosts_file {
            let (fvip, fnodes) = read_hosts_file(f)?;
            if let (Some(v), Some(fv)) = (&vip, &fvip) {
                if !v.eq_ignore_ascii_case(fv) {
                    return Err(usage(
                        format!("--hosts-file {}", f.display()),
                        format!("the file names virtual host `{fv}` but --vip is `{v}`"),
                        "drop --vip or make it match the file's second column",
                    ));
                }
            }
            vip = vip.or(fvip);
            nodes.extend(fnodes);
        }
        let vip = vip.ok_or_else(|| {
            usage(
                "--vip",
                "missing",
                "pass --vip VIRTUAL-HOSTNAME (or a --hosts-file with `<NODE> <VIRTUAL>` lines)",
            )
        })?;
        if nodes.is_empty() {
            return Err(usage(
                "--alt",
                "no node names",
                "pass --alt NODE-HOSTNAME once per GridFTP node (or --hosts-file)",
            ));
        }
        let mut all = vec![vip];
        all.extend(nodes);
        let all = hostname::validate_set(&all).map_err(|p| {
            usage(
                "--vip/--alt",
                p,
                "give each host once, as a DNS name (RFC 1123), at most 100 in all",
            )
        })?;
        Ok(Pool {
            vip: all[0].clone(),
            nodes: all[1..].to_vec(),
        })
    }

    /// Shared mode: one certificate, CN = VIP, SANs = VIP + nodes.
    /// XRootD mode: one per node, CN = node, SANs = node + VIP (node first, as XRootD needs).
    pub fn specs(&self, xrootd: bool) -> Vec<CertSpec> {
        if xrootd {
            self.nodes
                .iter()
                .map(|n| CertSpec {
                    label: n.clone(),
                    names: vec![n.clone(), self.vip.clone()],
                })
                .collect()
        } else {
            let mut names = vec![self.vip.clone()];
            names.extend(self.nodes.iter().cloned());
            vec![CertSpec {
                label: self.vip.clone(),
                names,
            }]
        }
    }
}

/// Reads `<NODE> <VIRTUAL>` lines; `#` comments and blank lines are skipped.
fn read_hosts_file(f: &Path) -> Result<(Option<String>, Vec<String>)> {
    let what = format!("--hosts-file {}", f.display());
    let text = std::fs::read_to_string(f).map_err(|e| {
        usage(
            &what,
            format!("cannot read: {e}"),
            "pass an existing file with one `<NODE-HOSTNAME> <VIRTUAL-HOSTNAME>` per line",
        )
    })?;
    let mut vip: Option<String> = None;
    let mut nodes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 2 {
            return Err(usage(
                format!("{}:{}", f.display(), i + 1),
                format!("`{line}` has {} columns, expected 2", cols.len()),
                "write `<NODE-HOSTNAME> <VIRTUAL-HOSTNAME>` (OSG load-balanced-hosts.txt format)",
            ));
        }
        match &vip {
            Some(v) if !v.eq_ignore_ascii_case(cols[1]) => {
                return Err(usage(
                    format!("{}:{}", f.display(), i + 1),
                    format!(
                        "virtual host `{}` differs from `{v}` on an earlier line",
                        cols[1]
                    ),
                    "one file describes one pool: use the same VIRTUAL-HOSTNAME on every line",
                ))
            }
            _ => vip = Some(cols[1].to_string()),
        }
        nodes.push(cols[0].to_string());
    }
    if nodes.is_empty() {
        return Err(usage(
            &what,
            "no host lines",
            "add `<NODE> <VIRTUAL>` lines",
        ));
    }
    Ok((vip, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn shared_and_xrootd_specs() {
        let p = Pool::new(Some("ftp.example"), &s(&["n1.example", "N2.example"]), None).unwrap();
        let sh = p.specs(false);
        assert_eq!(sh.len(), 1);
        assert_eq!(sh[0].names, s(&["ftp.example", "n1.example", "n2.example"]));
        let x = p.specs(true);
        assert_eq!(x[1].names, s(&["n2.example", "ftp.example"]));
    }

    #[test]
    fn hosts_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("hosts.txt");
        std::fs::write(
            &f,
            "# pool\nn1.example ftp.example\n\nn2.example   ftp.example\n",
        )
        .unwrap();
        let p = Pool::new(None, &[], Some(&f)).unwrap();
        assert_eq!(p.vip, "ftp.example");
        assert_eq!(p.nodes, s(&["n1.example", "n2.example"]));
        std::fs::write(&f, "n1.example ftp.example\nn2.example other.example\n").unwrap();
        let e = Pool::new(None, &[], Some(&f)).unwrap_err().to_string();
        assert!(e.contains(":2"), "{e}");
    }

    #[test]
    fn duplicates_rejected() {
        let e = Pool::new(
            Some("ftp.example"),
            &s(&["n1.example", "FTP.example"]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
