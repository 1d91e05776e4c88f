//! `webdav`: proves that the server speaks WebDAV, which third-party copy and the grid's
//! HTTP clients (gfal2, davix, FTS) need, rather than only answering GET. Two requests to
//! the target URL, through the `https` check's client ([`TlsClient`]: the same trust,
//! client certificate, `sni` and bounds):
//!
//! 1. `OPTIONS`: a 2xx answer with a `DAV` header naming compliance class 1 (RFC 4918,
//!    10.1). A web server without WebDAV answers OPTIONS too, but without `DAV`.
//! 2. `PROPFIND` with `Depth: 0` of the URL's path: the expected status (207 Multi-Status by
//!    default), and with 207 a body that is a `multistatus` document with a `response`.
//!
//! A request that gets no answer within nine tenths of the check's timeout is named
//! (`OPTIONS: no answer within ...`).
//!
//! The answers are untrusted: bodies are capped, header values must be visible ASCII, and
//! only the numeric compliance classes of `DAV` reach the detail.

use super::https::TlsClient;
use super::{Check, CheckResult};
use lvs_shared::http;
use std::sync::Mutex;
use std::time::Duration;

/// A Depth 0 PROPFIND answer is one `response` element; a few KiB at most.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Asks for one property: what any WebDAV server has (RFC 4918, 15.9).
const PROPFIND_BODY: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
    <D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/></D:prop></D:propfind>\n";

pub struct Webdav {
    pub tls: TlsClient,
    pub expect_status: u16,
    /// The check's timeout: the requests get nine tenths of it, so that a request that
    /// waits is named before the runner's own timeout fires.
    pub timeout: Duration,
}

impl Check for Webdav {
    async fn run(&self) -> CheckResult {
        let step = Mutex::new("OPTIONS");
        let budget = self.timeout * 9 / 10;
        match tokio::time::timeout(budget, self.talk(&step)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{}: no answer within {}",
                step.lock().map(|s| *s).unwrap_or("?"),
                lvs_shared::duration::format(budget)
            )),
        }
    }
}

impl Webdav {
    async fn talk(&self, step: &Mutex<&'static str>) -> CheckResult {
        let (url, connect_to) = self.tls.url()?;
        let client = self.tls.client(connect_to).await?;
        let o = http::request(&client, "OPTIONS", &url, &[], Vec::new(), BODY_LIMIT)
            .await
            .map_err(|e| format!("OPTIONS: {}", self.tls.name_the_name(e)))?;
        if !(200..300).contains(&o.status) {
            return Err(format!("OPTIONS: HTTP {} (expected 2xx)", o.status));
        }
        let classes = dav_classes(&o.headers)?;
        if let Ok(mut g) = step.lock() {
            *g = "PROPFIND";
        }
        let p = http::request(
            &client,
            "PROPFIND",
            &url,
            &[
                ("Depth", "0"),
                ("Content-Type", "application/xml; charset=utf-8"),
            ],
            PROPFIND_BODY.as_bytes().to_vec(),
            BODY_LIMIT,
        )
        .await
        .map_err(|e| format!("PROPFIND: {}", self.tls.name_the_name(e)))?;
        if p.status != self.expect_status {
            return Err(format!(
                "PROPFIND: HTTP {} (expected {})",
                p.status, self.expect_status
            ));
        }
        if p.status == 207 {
            multistatus(&p.body)?;
        }
        Ok(format!("DAV {classes}, PROPFIND {}", p.status))
    }
}

/// The numeric compliance classes of every `DAV` header ("1, 2"), or why the answer is not
/// a WebDAV server's.
pub fn dav_classes(h: &http::reqwest::header::HeaderMap) -> Result<String, String> {
    let mut classes: Vec<String> = Vec::new();
    let mut any = false;
    for v in h.get_all("dav") {
        any = true;
        let v = v
            .to_str()
            .map_err(|_| "OPTIONS: a DAV header that is not visible ASCII".to_string())?;
        for t in v.split(',').map(str::trim) {
            let numeric = !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit());
            if numeric && !classes.iter().any(|c| c == t) {
                classes.push(t.to_string());
            }
        }
    }
    if !any {
        return Err("OPTIONS: no DAV header (the server does not speak WebDAV)".into());
    }
    if !classes.iter().any(|c| c == "1") {
        return Err("OPTIONS: the DAV header does not name class 1".into());
    }
    Ok(classes.join(","))
}

/// A 207 body must be a `multistatus` document with at least one `response`, whatever
/// the namespace prefix (`<D:multistatus`, `<multistatus`).
pub fn multistatus(body: &[u8]) -> Result<(), String> {
    let t = std::str::from_utf8(body).map_err(|_| "PROPFIND: a 207 body that is not UTF-8")?;
    let has = |name: &str| {
        t.match_indices(name).any(|(i, _)| {
            let before = t[..i].chars().last();
            let after = t[i + name.len()..].chars().next();
            let start = match before {
                Some('<') => true,
                Some(':') => t[..i]
                    .rfind('<')
                    .is_some_and(|lt| t[lt + 1..i - 1].bytes().all(|b| b.is_ascii_alphanumeric())),
                _ => false,
            };
            start && matches!(after, Some(' ' | '>' | '/' | '\n' | '\r' | '\t'))
        })
    };
    if !has("multistatus") {
        return Err("PROPFIND: 207 without a multistatus document".into());
    }
    if !has("response") {
        return Err("PROPFIND: 207 multistatus without a response".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn dav_header_rules() {
        let mut h = HeaderMap::new();
        assert!(dav_classes(&h).unwrap_err().contains("no DAV header"));
        h.append("dav", HeaderValue::from_static("1"));
        h.append(
            "dav",
            HeaderValue::from_static("<http://apache.org/dav/propset/fs/1>"),
        );
        assert_eq!(dav_classes(&h).unwrap(), "1");
        let mut h = HeaderMap::new();
        h.append("dav", HeaderValue::from_static("2, <x>"));
        assert!(dav_classes(&h).unwrap_err().contains("class 1"));
        let mut h = HeaderMap::new();
        h.append("dav", HeaderValue::from_bytes(b"1,\xff").unwrap());
        assert!(dav_classes(&h).unwrap_err().contains("visible ASCII"));
    }

    #[test]
    fn multistatus_rules() {
        let xrd = b"<?xml version=\"1.0\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n<D:response xmlns:lp1=\"DAV:\">\n<D:href>/f</D:href></D:response>\n</D:multistatus>";
        multistatus(xrd).unwrap();
        multistatus(
            b"<multistatus xmlns=\"DAV:\"><response><href>/</href></response></multistatus>",
        )
        .unwrap();
        assert!(multistatus(b"<html>multistatus response</html>").is_err());
        assert!(
            multistatus(b"<D:multistatus xmlns:D=\"DAV:\"></D:multistatus>")
                .unwrap_err()
                .contains("without a response")
        );
        assert!(multistatus(b"\xff").is_err());
    }
}
