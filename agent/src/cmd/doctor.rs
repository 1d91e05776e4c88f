//! `lvs-node doctor`: every finding about this host, as text or JSON; the exit code is the
//! worst severity.

use crate::cli::DoctorArgs;
use crate::site::doctor::{diagnose, render, summarize};
use crate::site::gridftp_conf::Paths;
use crate::util::exit::EXIT_USAGE;
use lvs_shared::config::NodeConfig;
use std::path::Path;

pub async fn run(config: &Path, args: DoctorArgs) -> u8 {
    let cfg = match NodeConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            if args.json {
                let v = serde_json::json!({
                    "error": e.to_string(),
                    "summary": {"exit_code": EXIT_USAGE},
                });
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            }
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut paths = Paths::new(
        &args.gridftp_conf,
        args.sysconfig.as_deref(),
        args.cert.as_deref(),
    );
    if !args.xrootd_conf.is_empty() {
        paths.xrootd_conf = args.xrootd_conf.clone();
    }
    let findings = diagnose(&cfg, &paths).await;
    let summary = summarize(&findings);
    if args.json {
        let v = serde_json::json!({
            "config": cfg.file,
            "findings": findings,
            "summary": summary,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        print!("{}", render(&findings, &summary));
    }
    summary.exit_code
}
