//! `lvs-node`: the LVS direct-routing real-server agent.

use clap::Parser;
use lvs_node::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // A monitoring plugin reports bad usage as UNKNOWN (3), not clap's 2.
            if std::env::args().skip(1).any(|a| a == "nagios") && e.use_stderr() {
                let msg = e.to_string();
                let first = msg.lines().next().unwrap_or("bad usage");
                println!("LVS-NODE UNKNOWN - {}", first.trim_start_matches("error: "));
                eprint!("{msg}");
                return ExitCode::from(lvs_node::site::nagios::State::Unknown.code());
            }
            e.exit()
        }
    };
    lvs_node::util::logging::init(cli.verbose, cli.quiet);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(lvs_node::cmd::dispatch(cli));
    ExitCode::from(code)
}
