//! `http`: GET a URL on the node and expect a status, through the project's one HTTP
//! client (`lvs_shared::http`).

use super::{Check, CheckResult};
use lvs_shared::http::{self, reqwest, ClientOptions};
use std::time::Duration;

/// Bodies of check answers are not used; a small cap keeps a misbehaving server cheap.
pub const BODY_LIMIT: usize = 16 * 1024;

pub struct Http {
    url: String,
    expect_status: u16,
    client: reqwest::Client,
}

impl Http {
    pub fn new(url: String, expect_status: u16, timeout: Duration) -> Result<Http, String> {
        Ok(Http {
            url,
            expect_status,
            client: ClientOptions::with_timeout(timeout).build()?,
        })
    }
}

impl Check for Http {
    async fn run(&self) -> CheckResult {
        let r = http::get(&self.client, &self.url, None, BODY_LIMIT).await?;
        if r.status == self.expect_status {
            Ok(format!("HTTP {}", r.status))
        } else {
            Err(format!(
                "HTTP {} (expected {})",
                r.status, self.expect_status
            ))
        }
    }
}
