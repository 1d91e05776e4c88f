//! keepalived `MISC_CHECK { misc_path "lvs-node probe --agent URL"; misc_dynamic }` helper.
//! Exit codes (keepalived's misc_dynamic): 0 up at full weight; 1 down or maint; 2 + weight
//! for a reduced weight (capped at 255); 2 (weight 0) for drain. Anything unexpected — no
//! answer within the timeout, a malformed reply — fails closed with 1.

use crate::cli::ProbeArgs;
use lvs_shared::http::{self, ClientOptions};

pub async fn run(args: ProbeArgs) -> u8 {
    let mut url = args.agent.trim_end_matches('/').to_string();
    if !url.ends_with("/health") {
        url.push_str("/health");
    }
    // A fresh connection per probe: keepalived runs one process per check anyway.
    let opts = ClientOptions {
        pool: false,
        ..ClientOptions::with_timeout(args.timeout)
    };
    let client = match opts.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("probe: {e}");
            println!("1");
            return 1;
        }
    };
    let fetch = http::get(&client, &url, None, 4096);
    let code = match tokio::time::timeout(args.timeout, fetch).await {
        Err(_) => {
            eprintln!(
                "probe: no answer from {url} within {}",
                lvs_shared::duration::format(args.timeout)
            );
            1
        }
        Ok(Err(e)) => {
            eprintln!("probe: {url}: {e}");
            1
        }
        Ok(Ok(r)) => exit_code(r.status, &r.text()),
    };
    println!("{code}");
    code
}

/// Maps a `/health` answer to the misc_dynamic exit code.
pub fn exit_code(status: u16, body: &str) -> u8 {
    let field = |k: &str| {
        body.split_whitespace()
            .find_map(|t| t.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    let num = |k: &str| field(k).and_then(|v| v.parse::<u32>().ok());
    match field("state") {
        Some("up") if status == 200 => match (num("weight"), num("base")) {
            (Some(w), Some(b)) if w >= b => 0,
            (Some(w), _) if w > 0 => (w.min(253) + 2) as u8,
            (Some(_), _) => 1,
            (None, _) => 0,
        },
        Some("drain") => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn codes() {
        assert_eq!(
            exit_code(200, "state=up admin=ready weight=100 base=100\n"),
            0
        );
        assert_eq!(
            exit_code(200, "state=up admin=ready weight=75 base=100\n"),
            77
        );
        assert_eq!(
            exit_code(200, "state=up admin=ready weight=253 base=253\n"),
            0
        );
        assert_eq!(
            exit_code(503, "state=drain admin=drain weight=0 base=100\n"),
            2
        );
        assert_eq!(
            exit_code(503, "state=maint admin=maint weight=0 base=100\n"),
            1
        );
        assert_eq!(
            exit_code(
                503,
                "state=down admin=ready weight=0 base=100 reason=\"x\"\n"
            ),
            1
        );
        assert_eq!(exit_code(503, "state=up weight=100 base=100"), 1);
        assert_eq!(exit_code(200, "garbage"), 1);
    }
}
