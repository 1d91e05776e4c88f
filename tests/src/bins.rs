//! Paths to the workspace binaries under test. They are built by the README test command
//! (`cargo build --workspace` before `cargo test`); a missing one fails the test loudly.

use std::path::PathBuf;

pub fn target_dir() -> PathBuf {
    // A test executable lives in target/<profile>/deps/, a binary of this crate (the demo)
    // in target/<profile>/.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("target dir");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("target dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn bin(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` first (the README test command does)",
        p.display()
    );
    p
}

pub fn lvs_node() -> PathBuf {
    bin("lvs-node")
}

pub fn lvs_cert() -> PathBuf {
    bin("lvs-cert")
}

/// A static binary of packaging/build-static.sh for this test build's profile
/// (TARGET/<host triple>/<profile>/NAME); tests/run.sh builds them.
pub fn static_bin(name: &str) -> PathBuf {
    let target = target_dir();
    let profile = target.file_name().expect("profile dir");
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let p = target
        .parent()
        .expect("target dir")
        .join(triple)
        .join(profile)
        .join(name);
    assert!(
        p.exists(),
        "{} not built: run `packaging/build-static.sh --profile {}` first (tests/run.sh does)",
        p.display(),
        profile.to_string_lossy()
    );
    p
}
