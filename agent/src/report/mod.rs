//! The director-facing plane: what directors read and what reaches them, from cached state
//! only. The HTTP endpoint (`/health`, `/status`, `/pool`, `/metrics`), the HAProxy
//! agent-check responder, BFD, and the control socket that `drain`/`resume` talk to. The
//! TCP endpoints bind the real IP (the config refuses a VIP or a wildcard), are read-only,
//! bound connections per source and in all, keep slots for the directors and time out slow
//! or idle clients (`util::gate`).

pub mod agent_check;
pub mod bfd;
pub mod control;
pub mod http;
pub mod metrics;
pub mod tls;
