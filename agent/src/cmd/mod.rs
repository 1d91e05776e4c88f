//! The verbs, one file each: arguments in, mechanisms called, output printed. Every
//! behaviour is two hops from here: the verb's file, then the mechanism it calls.

pub mod dataplane;
pub mod director_config;
pub mod doctor;
pub mod drain;
pub mod firewalld_service;
pub mod nagios;
pub mod pool;
pub mod probe;
pub mod run;
pub mod serve_challenges;

use crate::cli::{Cli, Command, PoolCommand};

/// Runs the verb `cli` names; returns the exit code.
pub async fn dispatch(cli: Cli) -> u8 {
    let config = cli.config.clone();
    match cli.command {
        Command::Up(a) => dataplane::up(&config, a.dry_run).await,
        Command::Down(a) => dataplane::down(&config, a.dry_run).await,
        Command::Status(a) => dataplane::status(&config, a.json).await,
        Command::Run => run::run(&config).await,
        Command::Drain(a) => drain::drain(&config, a).await,
        Command::Resume => drain::resume(&config).await,
        Command::Probe(a) => probe::run(a).await,
        Command::DirectorConfig(a) if !a.pool.urls.is_empty() => director_config::pool(a).await,
        Command::DirectorConfig(a) => director_config::node(&config, a),
        Command::Pool(PoolCommand::Status(a)) => pool::status(&config, a).await,
        Command::ServeChallenges(a) => serve_challenges::standalone(a).await,
        Command::Doctor(a) => doctor::run(&config, a).await,
        Command::Nagios(a) => nagios::run(&config, a).await,
        Command::FirewalldService(a) => firewalld_service::run(&config, a),
    }
}
