//! `lvs-cert` as a library: the binary is a thin CLI over `cmd` (one module per
//! subcommand), which drives the mechanisms below (the clap `Cli` is also read by xtask to
//! generate man pages and completions).

pub mod acme;
pub mod cli;
pub mod cmd;
pub mod csr;
pub mod eab;
pub mod error;
pub mod http;
pub mod install;
pub mod lock;
pub mod names;
pub mod selfcheck;
pub mod sharedfs;
pub mod store;
pub mod verify;
pub mod webroot;
