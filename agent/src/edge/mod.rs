//! The client-facing edge: listeners on the VIP that any client on the internet reaches.
//! `[[redirect]]` sends uploads to a node, the ACME responder serves HTTP-01 challenges from
//! the shared webroot. They run on the edge plane, never on the director plane's threads.

pub mod acme;
pub mod redirect;
