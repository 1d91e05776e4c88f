//! `up`, `down` and `status`: thin views over one plan (see `dataplane`).
//! `down` refuses while the agent keeps the data plane converged: the agent would put
//! everything back within milliseconds, so the admin stops it first.

use crate::dataplane::{self, Failure, Mode};
use crate::util::exit::{EXIT_DRIFT, EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use lvs_shared::config::NodeConfig;
use std::path::Path;

fn load(config: &Path) -> Result<NodeConfig, u8> {
    NodeConfig::load(config).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })
}

fn fail(f: Failure) -> u8 {
    match f {
        Failure::Config(e) => {
            eprintln!("error: {e}\nnothing was changed");
            EXIT_USAGE
        }
        Failure::Apply(e) => {
            eprintln!("error: {e}");
            EXIT_FAIL
        }
    }
}

async fn apply(config: &Path, mode: Mode, dry_run: bool) -> u8 {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let verb = if mode == Mode::Up { "up" } else { "down" };
    if mode == Mode::Down && !dry_run {
        if let Some(code) = refuse_while_agent_runs(&cfg) {
            return code;
        }
    }
    let prepared = match dataplane::prepare(&cfg, mode, !dry_run).await {
        Ok(p) => p,
        Err(f) => return fail(f),
    };
    if dry_run {
        if prepared.plan.steps.is_empty() {
            println!("{verb}: nothing to do (dry run)");
        } else {
            println!(
                "{verb}: plan ({} steps, dry run, nothing changed):",
                prepared.plan.steps.len()
            );
            for (i, s) in prepared.plan.steps.iter().enumerate() {
                println!("  {:>3}. {}", i + 1, s.describe());
            }
        }
        return EXIT_OK;
    }
    match prepared.apply(&cfg).await {
        Ok(o) if o.applied.is_empty() => {
            println!("{verb}: already in place, nothing changed");
            EXIT_OK
        }
        Ok(o) => {
            for (i, s) in o.applied.iter().enumerate() {
                println!("  {:>3}. {s}", i + 1);
            }
            println!("{verb}: done ({} steps)", o.applied.len());
            EXIT_OK
        }
        Err(f) => fail(f),
    }
}

/// The running agent answers on its control socket and manages the data plane: a `down`
/// now would be repaired at once. Nothing is changed; the admin gets the command to run.
fn refuse_while_agent_runs(cfg: &NodeConfig) -> Option<u8> {
    let sock = &cfg.daemon.control_socket;
    if !cfg.daemon.manage_dataplane || !crate::report::control::agent_listening(sock) {
        return None;
    }
    let on_stop = match cfg.daemon.on_stop {
        lvs_shared::config::daemon::OnStop::Down => {
            "with on_stop = \"down\" in [daemon], stopping the agent runs `down` itself"
        }
        lvs_shared::config::daemon::OnStop::Keep => {
            "with on_stop = \"keep\" the VIPs stay until this `down`"
        }
    };
    eprintln!(
        "error: the agent (`lvs-node run`) is running (it answers on {}) and keeps the data plane \
         converged: it would put the VIPs back within milliseconds.\n\
         Stop it first, then take the node down:\n    \
         systemctl stop lvs-node && lvs-node down\n\
         ({on_stop}; to keep the agent but take the node out of rotation, use `lvs-node drain`)\n\
         nothing was changed",
        sock.display()
    );
    Some(EXIT_USAGE)
}

pub async fn up(config: &Path, dry_run: bool) -> u8 {
    apply(config, Mode::Up, dry_run).await
}

pub async fn down(config: &Path, dry_run: bool) -> u8 {
    apply(config, Mode::Down, dry_run).await
}

pub async fn status(config: &Path, json: bool) -> u8 {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let prepared = match dataplane::prepare(&cfg, Mode::Up, false).await {
        Ok(p) => p,
        Err(f) => return fail(f),
    };
    let st = prepared.status(&cfg);
    if json {
        let mut v = serde_json::to_value(&st).expect("status serializes");
        v["converged"] = serde_json::Value::Bool(st.converged());
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!(
            "interface {}  real IP {}  arp method {}",
            st.interface,
            st.real_ip.as_deref().unwrap_or("-"),
            st.method
        );
        let w = st
            .items
            .iter()
            .map(|i| i.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<10} {:<w$} {:<28} {:<28} OK",
            "KIND", "NAME", "DESIRED", "ACTUAL"
        );
        for i in &st.items {
            println!(
                "{:<10} {:<w$} {:<28} {:<28} {}",
                i.kind,
                i.name,
                i.desired,
                i.actual,
                if i.ok { "yes" } else { "NO" }
            );
        }
        println!(
            "{}",
            if st.converged() {
                "converged"
            } else {
                "DRIFT: run `lvs-node up`"
            }
        );
    }
    if st.converged() {
        EXIT_OK
    } else {
        EXIT_DRIFT
    }
}
