//! `lvs-node director-config`: this node's keepalived or HAProxy snippet, or with `--pool`,
//! one configuration for the whole pool from every node's `/status`.
//!
//! With `--pool`, each node's document goes through the pool's validation
//! ([`crate::wire::peer`]); a node whose document is refused is an error naming it (the
//! reason is safe to print), or left out with `--allow-missing`, and never configured.

use crate::cli::DirectorConfigArgs;
use crate::director::node::{render, Style};
use crate::director::pair::{single_sysctl, Pair};
use crate::director::pool::{haproxy, keepalived, parse_range, Node, Options};
use crate::pool;
use crate::util::exit::{EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use crate::wire::peer::{is_forbidden, PeerUrl};
use lvs_shared::config::daemon::parse_peer;
use lvs_shared::config::NodeConfig;
use std::path::Path;

/// This node's snippet (without `--pool`), or a single director's sysctl file.
pub fn node(config: &Path, args: DirectorConfigArgs) -> u8 {
    if args.pool.sysctl {
        print!("{}", single_sysctl());
        return EXIT_OK;
    }
    let cfg = match NodeConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let style = Style {
        haproxy: args.haproxy,
        misc_check: args.misc_check,
        probe_path: args.probe_path.clone(),
    };
    match render(&cfg, &style) {
        Ok(s) => {
            print!("{s}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

/// The whole pool's configuration (`--pool URL...`).
pub async fn pool(args: DirectorConfigArgs) -> u8 {
    let p = &args.pool;
    let mut urls = Vec::new();
    for u in &p.urls {
        match parse_peer(u).and_then(|b| PeerUrl::parse(&b).map(|_| b)) {
            Ok(b) if !urls.contains(&b) => urls.push(b),
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: --pool: {e}; write a node's report endpoint, e.g. --pool https://gridftp-n1.example.org:8443 or http://192.0.2.11:8080");
                return EXIT_USAGE;
            }
        }
    }
    // Written inside keepalived's double quotes: nothing that could end them or the line.
    if !args.probe_path.starts_with('/')
        || args
            .probe_path
            .chars()
            .any(|c| is_forbidden(c) || c.is_whitespace() || c == '"' || c == '\\')
    {
        eprintln!(
            "error: --probe-path: `{}` must be an absolute path without spaces, quotes or \
             backslashes, e.g. /usr/bin/lvs-node",
            crate::wire::peer::printable(&args.probe_path, 200)
        );
        return EXIT_USAGE;
    }
    if args.haproxy && p.bfd {
        eprintln!("error: --bfd: HAProxy has no BFD checker; use it with the keepalived output (drop --haproxy)");
        return EXIT_USAGE;
    }
    // A VRRP group of directors: checked before any node is asked.
    let pair = match p.directors.len() {
        0 | 1 => None,
        _ => match Pair::new(
            &p.directors,
            p.for_director,
            p.vrrp_interface.as_deref(),
            p.vrid,
        ) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
    };
    if pair.is_some() && args.haproxy {
        eprintln!("error: --director: the VRRP group is written for keepalived; drop --haproxy (HAProxy directors pair with their own keepalived or a load balancer in front)");
        return EXIT_USAGE;
    }
    if p.sysctl {
        match &pair {
            Some(g) => print!("{}", g.sysctl()),
            None => print!("{}", single_sysctl()),
        }
        return EXIT_OK;
    }
    // The director's own address is the BFD source of its sessions.
    let bfd_source = p.bfd_source.or(pair.as_ref().map(|g| g.me));
    if p.bfd && bfd_source.is_none() {
        eprintln!(
            "error: --bfd needs --bfd-source IP (this director's address), or --director and --for"
        );
        return EXIT_USAGE;
    }
    let data_ports = match p.gridftp_data_ports.as_deref().map(parse_range).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --gridftp-data-ports: {e}");
            return EXIT_USAGE;
        }
    };
    let (ca, cert) =
        match super::pool::tls_flags(p.ca.as_deref(), p.cert.as_deref(), p.key.as_deref()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        };
    let client = match pool::client(p.timeout, ca.as_deref(), cert.as_ref(), &urls) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let views = pool::poll_once(&client, &urls, p.timeout, None).await;
    let mut nodes = Vec::new();
    let mut missing = Vec::new();
    let mut invalid = Vec::new();
    for v in views {
        match (v.status, v.invalid) {
            (Some(s), _) => nodes.push(Node {
                url: v.url,
                status: s,
            }),
            (None, Some(why)) => invalid.push((v.url, why)),
            (None, None) => missing.push((v.url, v.error.unwrap_or_default())),
        }
    }
    if !missing.is_empty() || !invalid.is_empty() {
        let level = if p.allow_missing { "warning" } else { "error" };
        for (u, e) in &missing {
            eprintln!("{level}: node {u} did not answer: {e}");
        }
        for (u, e) in &invalid {
            eprintln!("{level}: node {u} sent an invalid /status, not configured: {e}");
        }
        if !p.allow_missing {
            eprintln!("no configuration printed: fix the node(s) above, or pass --allow-missing to leave them out");
            return EXIT_FAIL;
        }
    }
    if nodes.is_empty() {
        eprintln!("error: no node answered");
        return EXIT_FAIL;
    }
    let opts = Options {
        haproxy: args.haproxy,
        misc_check: args.misc_check,
        probe_path: args.probe_path.clone(),
        delay_loop: p.delay_loop,
        persistence: p.persistence,
        data_ports,
        fwmark: p.fwmark,
        bfd_source: bfd_source.filter(|_| p.bfd),
        missing: missing.iter().map(|(u, _)| u.clone()).collect(),
        invalid: invalid.iter().map(|(u, _)| u.clone()).collect(),
    };
    let out = if args.haproxy {
        haproxy(&nodes, &opts)
    } else {
        keepalived(&nodes, &opts).map(|k| match &pair {
            Some(g) => {
                let vips: Vec<std::net::IpAddr> = nodes
                    .iter()
                    .flat_map(|n| n.status.node.services.iter().map(|s| s.vip))
                    .collect();
                format!("{}{k}", g.keepalived(&vips))
            }
            None => k,
        })
    };
    match out {
        Ok(s) => {
            print!("{s}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAIL
        }
    }
}
