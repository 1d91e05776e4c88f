//! Paths to the workspace binaries under test. They are built by the README test command
//! (`cargo build --workspace` before `cargo test`); a missing one fails the test loudly.

use std::path::PathBuf;

pub fn target_dir() -> PathBuf {
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf()
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
