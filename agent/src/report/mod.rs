//! Reporting to directors, from cached state only: the HTTP endpoint (`/health`, `/status`,
//! `/pool`, `/metrics`) and the HAProxy agent-check responder. Both bind the real IP (the config
//! refuses a VIP or a wildcard), are read-only, bound connections per source and in all,
//! keep slots for the directors and time out slow or idle clients ([`gate`]).

pub mod agent_check;
pub mod gate;
pub mod http;
pub mod metrics;
pub mod pool_page;
pub mod status;

pub use gate::{Gate, Limits, Role};
