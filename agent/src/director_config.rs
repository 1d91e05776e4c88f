//! Director snippets for this node.

use crate::cli::DirectorConfigArgs;
use std::path::Path;

pub fn run(_config: &Path, _args: DirectorConfigArgs) -> u8 {
    eprintln!("director-config: not implemented yet");
    1
}
