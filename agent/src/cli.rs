//! Command-line interface. Exit codes: 0 success; 1 failure while applying (rolled back);
//! 2 bad config or usage (nothing changed); 3 `status`: the host drifts from the config;
//! 4 `run`: the data plane did not converge within `[daemon] start_timeout` (READY=1 never
//! sent; the unit's `RestartPreventExitStatus=` keeps systemd from looping on it).

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::util::exit::*;

#[derive(Parser, Debug)]
#[command(
    name = "lvs-node",
    version,
    about = "LVS direct-routing real-server agent: VIPs, ARP suppression, health and weight",
    long_about = "Puts the virtual IPs of an LVS-DR pool on this real server, hides them from ARP, \
                  keeps the node converged and reports its health and weight to keepalived and \
                  HAProxy directors."
)]
pub struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        default_value = lvs_shared::config::DEFAULT_PATH,
        env = "LVS_NODE_CONFIG"
    )]
    pub config: PathBuf,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install ARP suppression, then the VIPs (idempotent).
    Up(ApplyArgs),
    /// Remove the VIPs, then the ARP suppression, restoring the host as it was.
    Down(ApplyArgs),
    /// Show desired vs actual state; exit 3 when the host drifts from the config.
    Status(StatusArgs),
    /// Run the agent: converge, repair drift, check services, report health and weight.
    Run,
    /// Take the node out of rotation without cutting running transfers.
    Drain(DrainArgs),
    /// Put a drained node back in rotation.
    Resume,
    /// keepalived MISC_CHECK helper: ask an agent for health and weight.
    Probe(ProbeArgs),
    /// Print this node's keepalived real_server stanza or HAProxy server line; with
    /// --pool, one complete director configuration for the whole pool.
    DirectorConfig(DirectorConfigArgs),
    /// The pool of nodes (`[pool] peers`), as their report endpoints tell it.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Serve /.well-known/acme-challenge/ from a shared webroot (no daemon needed).
    ServeChallenges(ServeChallengesArgs),
    /// Check this real server for what breaks LVS-DR GridFTP, and explain each fix.
    /// Exit 0: no error (warnings allowed); 1: at least one error; 2: bad config.
    Doctor(DoctorArgs),
    /// Nagios/Icinga/CheckMK plugin: agent state, data plane drift and certificate expiry
    /// in one status line with performance data. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Nagios(NagiosArgs),
    /// Print a firewalld service definition (XML) for GridFTP or the report ports, built
    /// from this node's config.
    FirewalldService(FirewalldServiceArgs),
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Print the ordered plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    /// Why the node is drained (shown in status and to directors).
    #[arg(long)]
    pub reason: Option<String>,
    /// Block until established sessions on the VIP service ports reach zero.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (e.g. 30m).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Maintenance instead of drain: directors mark the node MAINT (HAProxy) or remove it.
    #[arg(long)]
    pub maint: bool,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The agent's HTTP endpoint, e.g. http://192.0.2.11:8080
    #[arg(long)]
    pub agent: String,
    /// Fail closed after this long.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct DirectorConfigArgs {
    /// keepalived real_server stanza (default).
    #[arg(long, conflicts_with = "haproxy")]
    pub keepalived: bool,
    /// HAProxy server line with agent-check.
    #[arg(long)]
    pub haproxy: bool,
    /// keepalived MISC_CHECK (misc_dynamic, via `lvs-node probe`) instead of HTTP_GET.
    #[arg(long, conflicts_with = "haproxy")]
    pub misc_check: bool,
    /// The lvs-node binary on the director, for MISC_CHECK's misc_path.
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/lvs-node")]
    pub probe_path: String,
    /// Pool-wide configuration (see docs/director.md).
    #[command(flatten)]
    pub pool: PoolDirectorArgs,
}

/// `director-config --pool`: read every node's /status and print one configuration.
#[derive(Args, Debug, Default, Clone)]
pub struct PoolDirectorArgs {
    /// A node's report endpoint, e.g. http://192.0.2.11:8080 (repeatable: one per node).
    #[arg(long = "pool", value_name = "URL")]
    pub urls: Vec<String>,
    /// Leave out nodes that do not answer (default: an error naming them).
    #[arg(long, requires = "urls")]
    pub allow_missing: bool,
    /// keepalived delay_loop of every virtual_server (e.g. 1s, 6s).
    #[arg(long, default_value = "1s", value_parser = parse_duration, requires = "urls")]
    pub delay_loop: std::time::Duration,
    /// Add persistence_timeout SECONDS to every virtual_server.
    #[arg(long, value_name = "SECONDS", requires = "urls")]
    pub persistence: Option<u32>,
    /// GridFTP data channels through the VIP (passive range LOW-HIGH, the
    /// GLOBUS_TCP_PORT_RANGE): port 2811 and the range become one firewall-mark
    /// virtual_server, with the director's mark rules printed beside it.
    #[arg(long, value_name = "LOW-HIGH", requires = "urls")]
    pub gridftp_data_ports: Option<String>,
    /// First firewall mark for --gridftp-data-ports (one mark per VIP).
    #[arg(long, default_value_t = 2811, requires = "gridftp_data_ports")]
    pub fwmark: u32,
    /// Timeout for each node's /status.
    #[arg(long, default_value = "3s", value_parser = parse_duration, requires = "urls")]
    pub timeout: std::time::Duration,
    /// BFD to every node (each needs `[bfd]`): one bfd_instance per node and a BFD_CHECK
    /// beside the HTTP_GET in each real_server.
    #[arg(long, requires = "urls")]
    pub bfd: bool,
    /// The director's own address for --bfd (bfd_instance source_ip); each node must list
    /// it in `[bfd] directors`.
    #[arg(long, value_name = "IP", requires = "bfd")]
    pub bfd_source: Option<std::net::IpAddr>,
    /// A director of a VRRP group (repeatable, highest priority first). With two or more,
    /// the output is the complete config of the director named by --for: one
    /// vrrp_instance holding the VIPs, lvs_sync_daemon, then the virtual_servers.
    #[arg(long = "director", value_name = "ADDR", requires = "urls")]
    pub directors: Vec<std::net::IpAddr>,
    /// The directors' interface on the VIPs' network (VRRP and the sync daemon).
    #[arg(long, value_name = "IF", requires = "directors")]
    pub vrrp_interface: Option<String>,
    /// Which --director this config is for.
    #[arg(long = "for", value_name = "ADDR", requires = "directors")]
    pub for_director: Option<std::net::IpAddr>,
    /// The VRRP virtual_router_id of the group (1-255).
    #[arg(long, default_value_t = crate::director::pair::DEFAULT_VRID, requires = "directors")]
    pub vrid: u8,
    /// Print the director's sysctl.d file instead of its keepalived config: the --for
    /// director's with two or more --director, else a single director's (no --pool needed).
    #[arg(long)]
    pub sysctl: bool,
    /// CA bundle (PEM) or directory (e.g. /etc/grid-security/certificates) that the
    /// certificates of https:// nodes must verify against; default: the system's roots.
    #[arg(long, value_name = "PATH", requires = "urls")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for nodes whose report endpoint asks for one
    /// (`[report] client_ca`); with --key.
    #[arg(long, value_name = "PATH", requires_all = ["urls", "key"])]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM, mode 0600 or 0400).
    #[arg(long, value_name = "PATH", requires = "cert")]
    pub key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PoolCommand {
    /// One line per node: state, admin, weight, sessions, failing checks, certificate
    /// expiry. Exit 0: no node down or unreachable (drain and maint are admin choices);
    /// 1: some node down or unreachable; 2: bad usage or config.
    Status(PoolStatusArgs),
}

#[derive(Args, Debug)]
pub struct PoolStatusArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// A node's report endpoint (repeatable); default: [pool] peers and this node.
    #[arg(long, value_name = "URL")]
    pub peer: Vec<String>,
    /// Timeout for each node's /status.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Exit 1 when fewer nodes than this serve (up or held); default `[pool] min_serving`,
    /// else 1. No node serving always exits 1.
    #[arg(long, value_name = "N")]
    pub min_serving: Option<u32>,
    /// CA bundle (PEM) or directory that the certificates of https:// nodes must verify
    /// against; default: `[pool] ca`, else the system's roots.
    #[arg(long, value_name = "PATH")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for nodes whose report endpoint asks for one; with --key.
    /// Default: `[pool] cert`.
    #[arg(long, value_name = "PATH", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM, mode 0600 or 0400). Default: `[pool] key`.
    #[arg(long, value_name = "PATH", requires = "cert")]
    pub key: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServeChallengesArgs {
    /// The shared webroot (the directory holding .well-known/acme-challenge/).
    #[arg(long)]
    pub webroot: PathBuf,
    /// Address to listen on, e.g. 192.0.2.100:80 (repeatable).
    #[arg(long, required = true)]
    pub listen: Vec<SocketAddr>,
}

#[derive(Args, Debug, Default)]
pub struct DoctorArgs {
    /// Machine-readable output: the findings and a summary.
    #[arg(long)]
    pub json: bool,
    /// GridFTP config file(s) to read instead of /etc/gridftp.d/* then /etc/gridftp.conf
    /// (repeatable; later files win).
    #[arg(long, value_name = "PATH")]
    pub gridftp_conf: Vec<PathBuf>,
    /// The GridFTP service environment file (default /etc/sysconfig/globus-gridftp-server,
    /// then /etc/default/globus-gridftp-server).
    #[arg(long, value_name = "PATH")]
    pub sysconfig: Option<PathBuf>,
    /// The host certificate (default X509_USER_CERT from the environment file, then
    /// /etc/grid-security/gridftp/gridftp-hostcert.pem, then /etc/grid-security/hostcert.pem).
    #[arg(long, value_name = "PATH")]
    pub cert: Option<PathBuf>,
    /// XRootD config file(s) to judge instead of /etc/xrootd/xrootd-*.cfg (repeatable):
    /// the scitokens plugin they load must accept tokens for the VIP's name.
    #[arg(long, value_name = "PATH")]
    pub xrootd_conf: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct NagiosArgs {
    /// WARNING when a certificate expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub cert_warn: u32,
    /// CRITICAL when a certificate expires within this many days (at most --cert-warn).
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub cert_crit: u32,
    /// Certificate(s) to check (repeatable). Default: the `certificate` checks of the
    /// config, else the GridFTP host certificate (X509_USER_CERT, then the usual paths).
    #[arg(long, value_name = "PATH")]
    pub cert: Vec<PathBuf>,
    /// The agent's report endpoint, e.g. http://192.0.2.11:8080 (default: `[report] http`).
    #[arg(long, value_name = "URL")]
    pub agent: Option<String>,
    /// Give up on the agent after this long (CRITICAL: it does not answer).
    #[arg(short, long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Judge the pool: WARNING when fewer nodes than this serve (up or held), CRITICAL
    /// when none does. Default `[pool] min_serving`; the pool is judged when `[pool] peers`
    /// is set or this flag is given.
    #[arg(long, value_name = "N")]
    pub min_serving: Option<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct FirewalldServiceArgs {
    /// Which service: `gridftp` (2811 and the GridFTP data port range) or `report`
    /// (the `[report]` http and agent-check ports).
    #[arg(value_parser = ["gridftp", "report"])]
    pub service: String,
    /// The data port range, e.g. 50000-51000 (default: GLOBUS_TCP_PORT_RANGE or
    /// port_range from the GridFTP config, else 50000-51000).
    #[arg(long, value_name = "LOW-HIGH")]
    pub port_range: Option<String>,
    /// GridFTP config file(s) to read instead of /etc/gridftp.d/* then /etc/gridftp.conf.
    #[arg(long, value_name = "PATH")]
    pub gridftp_conf: Vec<PathBuf>,
    /// The GridFTP service environment file (default /etc/sysconfig/globus-gridftp-server,
    /// then /etc/default/globus-gridftp-server).
    #[arg(long, value_name = "PATH")]
    pub sysconfig: Option<PathBuf>,
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    lvs_shared::duration::parse(s)
}
