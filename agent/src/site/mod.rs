//! Site integrations, consumers of the mechanisms below: `doctor` (what breaks LVS-DR on
//! this host, and the fix), the Nagios plugin, firewalld service files, and the readers of
//! the GridFTP and XRootD servers' own configs.

pub mod doctor;
pub mod firewalld;
pub mod gridftp_conf;
pub mod nagios;
pub mod xrootd_conf;
