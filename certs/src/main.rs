//! `lvs-cert`: certificates for a load-balanced GridFTP pool.

use clap::Parser;
use lvs_cert::cli::{Cli, Command};
use lvs_cert::cmd::{acme, inspect, install, renew, request};
use lvs_cert::error;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { error::EXIT_USAGE } else { 0 });
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LVS_CERT_LOG")
                .unwrap_or_else(|_| format!("lvs_cert={level}").into()),
        )
        .with_writer(std::io::stderr)
        // No colour codes in the journal (lvs-cert-renew.service) or in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(error::EXIT_FAIL);
        }
    };
    ExitCode::from(rt.block_on(dispatch(cli)))
}

async fn dispatch(cli: Cli) -> u8 {
    let work = async {
        match &cli.command {
            Command::Request(a) => request::run(a).map(|_| error::EXIT_OK),
            Command::Acme(a) => acme::run(a.as_ref()).await.map(|_| 0),
            Command::Renew(a) => renew::run(a).await.map(|_| 0),
            Command::Install(a) => install::run(a).map(|_| 0),
            Command::Inspect(a) => inspect::run(a),
        }
    };
    // On SIGINT/SIGTERM the work future is dropped: its guards remove the tokens and
    // release the lock before we exit.
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot watch SIGTERM: {e}");
            return error::EXIT_FAIL;
        }
    };
    let res = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; tokens removed, lock released")),
        _ = term.recv() => Err(anyhow::anyhow!("terminated; tokens removed, lock released")),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            error::exit_code(&e)
        }
    }
}
