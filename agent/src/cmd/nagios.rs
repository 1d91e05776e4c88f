//! `lvs-node nagios`: the monitoring plugin's one line and exit code.

use crate::cli::NagiosArgs;
use crate::site::nagios::{check, render, Options, Part, State};
use std::path::Path;

pub async fn run(config: &Path, args: NagiosArgs) -> u8 {
    let opts = Options {
        cert_warn: args.cert_warn,
        cert_crit: args.cert_crit,
        cert: args.cert,
        agent: args.agent,
        timeout: args.timeout,
        min_serving: args.min_serving,
    };
    let (state, out) = match check(config, &opts).await {
        Ok(parts) => render(&parts),
        Err(e) => render(&[Part::new(State::Unknown, e)]),
    };
    print!("{out}");
    state.code()
}
