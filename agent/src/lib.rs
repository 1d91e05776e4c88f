//! The node agent as a library: the binary is a thin CLI over these modules. The layers, from
//! the bottom up, and what may import what, are in docs/architecture.md; a test
//! (tests/tests/architecture.rs) reads the `use` lines and holds the code to them.

// Bottom: helpers and wire types.
pub mod util;
pub mod wire;
// Mechanisms.
pub mod dataplane;
pub mod director;
pub mod edge;
pub mod health;
pub mod pool;
pub mod report;
pub mod site;
// The daemon (`run`) puts the planes together.
pub mod daemon;
// Top: arguments and verbs.
pub mod cli;
pub mod cmd;
