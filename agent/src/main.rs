//! `lvs-node`: the LVS direct-routing real-server agent.

use clap::Parser;
use lvs_node::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    lvs_node::logging::init(cli.verbose, cli.quiet);
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
    let code = rt.block_on(dispatch(cli));
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> u8 {
    let config = cli.config.clone();
    match cli.command {
        Command::Up(a) => lvs_node::commands::up(&config, a.dry_run).await,
        Command::Down(a) => lvs_node::commands::down(&config, a.dry_run).await,
        Command::Status(a) => lvs_node::commands::status(&config, a.json).await,
        Command::Run => lvs_node::daemon::run(&config).await,
        Command::Drain(a) => lvs_node::control::drain_command(&config, a).await,
        Command::Resume => lvs_node::control::resume_command(&config).await,
        Command::Probe(a) => lvs_node::probe::run(a).await,
        Command::DirectorConfig(a) if !a.pool.urls.is_empty() => {
            lvs_node::director_pool::run(a).await
        }
        Command::DirectorConfig(a) => lvs_node::director_config::run(&config, a),
        Command::Pool(lvs_node::cli::PoolCommand::Status(a)) => {
            lvs_node::pool::cmd::status(&config, a).await
        }
        Command::ServeChallenges(a) => lvs_node::acme_responder::standalone(a).await,
        Command::Doctor(a) => lvs_node::doctor::run(&config, a).await,
    }
}
