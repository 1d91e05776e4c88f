//! The exit codes every verb uses (README, "Commands and exit codes").

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAIL: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_DRIFT: u8 = 3;
/// `run` gave up on the first convergence (see `[daemon] start_timeout`).
pub const EXIT_NOT_CONVERGED: u8 = 4;
