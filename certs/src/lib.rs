//! `lvs-cert` as a library: the binary is a thin CLI over these modules (the clap `Cli`
//! is also read by xtask to generate man pages and completions).

pub mod acme;
pub mod cli;
pub mod csr;
pub mod error;
pub mod http;
pub mod inspect;
pub mod install;
pub mod installcmd;
pub mod lock;
pub mod names;
pub mod renew;
pub mod request;
pub mod selfcheck;
pub mod store;
pub mod verify;
pub mod webroot;
