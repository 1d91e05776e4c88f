//! `up`, `down` and `status`: thin views over one plan (see `dataplane`).

use std::path::Path;

pub async fn up(_config: &Path, _dry_run: bool) -> u8 {
    eprintln!("up: not implemented yet");
    1
}

pub async fn down(_config: &Path, _dry_run: bool) -> u8 {
    eprintln!("down: not implemented yet");
    1
}

pub async fn status(_config: &Path, _json: bool) -> u8 {
    eprintln!("status: not implemented yet");
    1
}
