//! Pieces shared by `lvs-node` and `lvs-cert`: the node config, durations, atomic file
//! writes and the error type that names the file, the key and the fix.

pub mod atomic;
pub mod config;
pub mod duration;
pub mod error;
pub mod hostname;

pub use error::ConfigError;
