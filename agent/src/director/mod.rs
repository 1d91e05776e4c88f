//! Director configuration: keepalived `virtual_server`s and HAProxy backends, for this node
//! (`node`) or for the whole pool from every node's `/status` (`pool`).

pub mod node;
pub mod pair;
pub mod pool;
