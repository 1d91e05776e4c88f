//! Small helpers every layer may reach without going up: exit codes, wall-clock formatting,
//! the connection gate of every TCP listener, blocking work kept off the runtimes, logging,
//! this host's name, TLS certificate pairs followed on renewal, and the running config's
//! channel.

pub mod blocking;
pub mod exit;
pub mod fds;
pub mod fs;
pub mod gate;
pub mod host;
pub mod logging;
pub mod time;
pub mod tls;

use lvs_shared::config::NodeConfig;
use std::sync::Arc;
use tokio::sync::watch;

/// The running config: the daemon replaces it on a good SIGHUP; every task reads the latest.
pub type ConfigRx = watch::Receiver<Arc<NodeConfig>>;
