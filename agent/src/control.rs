//! The root-only control socket: drain and resume.

use crate::cli::DrainArgs;
use std::path::Path;

pub async fn drain_command(_config: &Path, _args: DrainArgs) -> u8 {
    eprintln!("drain: not implemented yet");
    1
}

pub async fn resume_command(_config: &Path) -> u8 {
    eprintln!("resume: not implemented yet");
    1
}
