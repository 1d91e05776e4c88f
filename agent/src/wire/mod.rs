//! The wire types, at the bottom of the agent: what `/status` carries ([`status`]), the node
//! and check states inside it ([`state`]), and the validated view of another node's
//! document ([`peer`]). Every reader of a `/status` document uses them.

pub mod peer;
pub mod state;
pub mod status;
