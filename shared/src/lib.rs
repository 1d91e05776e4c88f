//! Pieces shared by `lvs-node` and `lvs-cert`: the node config, durations, atomic file
//! writes, the one HTTP client and the error type that names the file, the key and the fix.

pub mod atomic;
pub mod config;
pub mod duration;
pub mod error;
pub mod hostname;
pub mod http;
pub mod tpc;

pub use error::ConfigError;
