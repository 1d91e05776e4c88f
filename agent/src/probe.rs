//! keepalived MISC_CHECK helper.

use crate::cli::ProbeArgs;

pub async fn run(_args: ProbeArgs) -> u8 {
    1
}
