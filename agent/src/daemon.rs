//! `lvs-node run`.

use std::path::Path;

pub async fn run(_config: &Path) -> u8 {
    eprintln!("run: not implemented yet");
    1
}
