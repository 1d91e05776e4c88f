//! Command line. Exit codes: 0 ok, 1 failure, 2 bad input or usage (nothing written).

use crate::csr::{KeyType, Subject};
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/lvs-cert";

#[derive(Parser, Debug)]
#[command(
    name = "lvs-cert",
    version,
    about = "Certificates for a load-balanced GridFTP pool: SAN and XRootD CSRs, ACME through the VIP, install, renew"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug). Private keys are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a private key and CSR for a CA (shared: CN = VIP; --xrootd: one per node).
    Request(RequestArgs),
    /// Obtain a certificate over ACME (Let's Encrypt, or with EAB InCommon/Sectigo, HARICA) through the VIP with a shared webroot.
    Acme(Box<AcmeArgs>),
    /// Re-run this node's `acme` settings when due (safe from a timer on every node; a no-op where nothing is configured).
    Renew(RenewArgs),
    /// Install the newest valid certificate published in a directory.
    Install(InstallArgs),
    /// Show a certificate; exit 1 when names are missing, the key does not match or it expires soon.
    Inspect(InspectArgs),
}

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct PoolArgs {
    /// The virtual hostname clients use (CN of the shared certificate).
    #[arg(long)]
    pub vip: Option<String>,
    /// A node's hostname: repeat the flag or give a comma-separated list.
    #[arg(long = "alt", value_delimiter = ',')]
    pub alt: Vec<String>,
    /// OSG batch file: lines `<NODE-HOSTNAME> <VIRTUAL-HOSTNAME>`.
    #[arg(long)]
    pub hosts_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// One key and CSR per node (CN = node, SANs = node + VIP) for XRootD hosts.
    #[arg(long)]
    pub xrootd: bool,
    /// Directory for the key and CSR files (created 0700 when missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "rsa2048")]
    pub key_type: KeyType,
    #[command(flatten)]
    pub subject: Subject,
    /// Overwrite existing key/CSR files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct AcmeArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// The shared webroot every node serves on port 80 (tokens go to .well-known/acme-challenge/).
    #[arg(long)]
    pub webroot: PathBuf,
    /// Shared directory for the lock, published certificates and the renewal record
    /// [default: WEBROOT/../lvs-cert].
    #[arg(long)]
    pub shared_dir: Option<PathBuf>,
    /// Local directory for the ACME account (0600).
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// ACME directory URL [default: Let's Encrypt production].
    #[arg(long, conflicts_with = "staging")]
    pub directory: Option<String>,
    /// Use the Let's Encrypt staging directory.
    #[arg(long)]
    pub staging: bool,
    /// PEM CA certificate to trust for the ACME server's TLS (a test CA such as Pebble).
    #[arg(long)]
    pub root_ca: Option<PathBuf>,
    /// PEM root CA(s) the issued certificate must chain to (signatures checked) before it is
    /// published or installed [default: the system trust store].
    #[arg(long)]
    #[serde(default)]
    pub issuer_ca: Option<PathBuf>,
    /// Contact address for the ACME account.
    #[arg(long)]
    pub email: Option<String>,
    /// External account binding (InCommon/Sectigo, HARICA): the key ID the CA gave. Used
    /// once, when the account is registered. Prefer --eab-file: flags show in `ps`.
    #[arg(long, value_name = "KID")]
    #[serde(skip)]
    pub eab_kid: Option<String>,
    /// The EAB HMAC key, base64url as the CA shows it (with --eab-kid).
    #[arg(long, value_name = "KEY")]
    #[serde(skip)]
    pub eab_hmac_key: Option<String>,
    /// The EAB key ID and HMAC key from a file (mode 0600; TOML: kid = "..." and
    /// hmac_key = "..."), read only when an account is registered.
    #[arg(long, value_name = "PATH")]
    #[serde(default)]
    pub eab_file: Option<PathBuf>,
    /// Where to install the certificate [default: the GridFTP or, with --xrootd, the hostcert path].
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Where to install the key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// One certificate per node, the node's name first (XRootD).
    #[arg(long)]
    pub xrootd: bool,
    /// With --xrootd: this node's hostname, whose certificate is installed here [default: hostname].
    #[arg(long)]
    pub node: Option<String>,
    /// Command run (sh -c) after a new certificate is installed.
    #[arg(long)]
    pub deploy_hook: Option<String>,
    /// The deploy hook is killed (its whole process group) after this long.
    #[arg(long, default_value = DEFAULT_HOOK_TIMEOUT)]
    #[serde(default = "default_hook_timeout")]
    pub deploy_hook_timeout: String,
    /// Issue even if a valid certificate is installed and not due.
    #[arg(long)]
    #[serde(skip)]
    pub force: bool,
    #[arg(long, value_enum, default_value = "rsa2048")]
    pub key_type: KeyType,
    /// The VIP address for the self-check [default: resolve --vip].
    #[arg(long)]
    pub vip_ip: Option<IpAddr>,
    /// A node's real IP for the self-check, NAME=IP (repeatable) [default: resolve the name].
    #[arg(long = "node-ip")]
    pub node_ip: Vec<String>,
    /// Fetches of each token through the VIP [default: 2 per node, at least 3].
    #[arg(long, default_value_t = 0)]
    pub self_check_rounds: usize,
    /// HTTP port the CA validates on.
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
    /// A lock whose heartbeat is older than this is stale (its holder died).
    #[arg(long, default_value = "30s")]
    pub lock_stale: String,
    /// How long to wait for another node's issuance.
    #[arg(long, default_value = "10m")]
    pub lock_wait: String,
    /// Each request to the ACME server must be answered within this (connect, TLS, body).
    #[arg(long, default_value = DEFAULT_HTTP_TIMEOUT)]
    #[serde(default = "default_http_timeout")]
    pub http_timeout: String,
}

pub const DEFAULT_HOOK_TIMEOUT: &str = "5m";
pub const DEFAULT_HTTP_TIMEOUT: &str = "30s";

fn default_hook_timeout() -> String {
    DEFAULT_HOOK_TIMEOUT.into()
}

fn default_http_timeout() -> String {
    DEFAULT_HTTP_TIMEOUT.into()
}

#[derive(Args, Debug)]
pub struct RenewArgs {
    /// Where `acme` recorded what to renew (this node's own record, used first).
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// This node's renewal settings, for nodes that never ran `acme`: the `acme` flags as
    /// TOML keys [default: /etc/lvs-cert/renew.toml].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The pool's shared directory, whose renewal.json supplies the names (only the names)
    /// when the config gives none [default: the config's shared_dir].
    #[arg(long)]
    pub shared_dir: Option<PathBuf>,
    /// Renew even if not due.
    #[arg(long)]
    pub force: bool,
    /// Write the outcome (success, time of the last run and of the last success) to this
    /// Prometheus text file, atomically: point it into node_exporter's textfile collector
    /// directory, e.g. /var/lib/prometheus/node-exporter/lvs-cert.prom.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Directory holding published certificates (lvs-cert's shared dir, a certbot live/ dir,
    /// or a directory with fullchain.pem/cert.pem and privkey.pem).
    #[arg(long)]
    pub from: PathBuf,
    /// The CN the certificate must have (the VIP hostname, or with --xrootd this node's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Other names it must cover (repeat or comma-separated).
    #[arg(long = "alt", value_delimiter = ',')]
    pub alt: Vec<String>,
    /// Install to the XRootD paths (/etc/grid-security/hostcert.pem, hostkey.pem).
    #[arg(long)]
    pub xrootd: bool,
    #[arg(long)]
    pub cert: Option<PathBuf>,
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[arg(long)]
    pub deploy_hook: Option<String>,
    /// The deploy hook is killed (its whole process group) after this long.
    #[arg(long, default_value = DEFAULT_HOOK_TIMEOUT)]
    pub deploy_hook_timeout: String,
    /// PEM root CA(s) the certificate must chain to [default: the system trust store].
    #[arg(long)]
    pub issuer_ca: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// PEM certificate (chain) to show.
    pub cert: PathBuf,
    /// Private key that must match.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Name that must be covered.
    #[arg(long)]
    pub vip: Option<String>,
    /// More names that must be covered (repeat or comma-separated).
    #[arg(long = "alt", value_delimiter = ',')]
    pub alt: Vec<String>,
    /// Fail when it expires within N days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Fail unless the chain verifies (signatures, validity, serverAuth) up to the root
    /// CA(s) in this PEM file, e.g. an IGTF CA or a private CA.
    #[arg(long, value_name = "PEM", conflicts_with = "system_trust")]
    pub issuer_ca: Option<PathBuf>,
    /// Fail unless the chain verifies up to the system trust store (Let's Encrypt).
    #[arg(long)]
    pub system_trust: bool,
    #[arg(long)]
    pub json: bool,
}
