//! The subcommands: each reads its arguments, drives the mechanisms (ACME, the lock, the
//! shared store, install, verification) and prints what it did. The mechanisms live in
//! their own modules at the crate root and know nothing of the command line's output.

pub mod acme;
pub mod inspect;
pub mod install;
pub mod renew;
pub mod request;
