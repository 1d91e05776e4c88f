//! Site integrations, consumers of the mechanisms below: `doctor` (what breaks LVS-DR on
//! this host, and the fix), the Nagios plugin, and firewalld service files.

pub mod doctor;
pub mod firewalld;
pub mod gridftp_conf;
pub mod nagios;
