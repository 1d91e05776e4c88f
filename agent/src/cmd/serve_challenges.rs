//! `lvs-node serve-challenges`: the ACME HTTP-01 responder on its own, for a node that does
//! not run the agent (the agent serves `[acme]` itself).

use crate::cli::ServeChallengesArgs;
use crate::edge::acme::serve;
use crate::util::exit::{EXIT_FAIL, EXIT_OK, EXIT_USAGE};

/// `lvs-node serve-challenges --webroot DIR --listen ADDR...`
pub async fn standalone(args: ServeChallengesArgs) -> u8 {
    if !args.webroot.is_dir() {
        eprintln!(
            "error: --webroot {}: not a directory\n  fix: pass the shared webroot that `lvs-cert acme --webroot` writes to",
            args.webroot.display()
        );
        return EXIT_USAGE;
    }
    let addrs: Vec<String> = args.listen.iter().map(|a| a.to_string()).collect();
    eprintln!(
        "serving {}/.well-known/acme-challenge/ on {}",
        args.webroot.display(),
        addrs.join(", ")
    );
    match serve(args.webroot, args.listen).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAIL
        }
    }
}
