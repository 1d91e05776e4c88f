//! The wire types, at the bottom of the agent: what `/status` carries ([`status`]), the node
//! and check states inside it ([`state`]). Every reader of a `/status` document uses them.

pub mod state;
pub mod status;
