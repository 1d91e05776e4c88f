//! The node agent as a library: the binary is a thin CLI over these modules.

pub mod acme_responder;
pub mod bfd;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod director_config;
pub mod director_pool;
pub mod doctor;
pub mod firewalld;
pub mod health;
pub mod logging;
pub mod nagios;
pub mod pool;
pub mod probe;
pub mod redirect;
pub mod report;
pub mod sockdiag;
