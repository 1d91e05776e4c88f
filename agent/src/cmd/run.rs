//! `lvs-node run`: the daemon (see `daemon` for its planes).

use std::path::Path;

pub async fn run(config: &Path) -> u8 {
    crate::daemon::run(config).await
}
