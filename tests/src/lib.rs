//! The LVS-DR lab built from network namespaces, shared by the integration tests.
//! Every test builds its own uniquely named namespaces and removes them on drop.

pub mod bench;
pub mod bins;
pub mod dr;
pub mod gridftp;
pub mod gsi;
pub mod haproxy;
pub mod netns;
pub mod node;
pub mod pebble;
pub mod units;
pub mod vm;
pub mod webdav;
pub mod wlcg;
pub mod xrootd;

pub use dr::{DrLab, LabOpts};
pub use netns::{require_root, wait_for, Netns};
