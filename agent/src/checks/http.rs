//! `http`: GET a URL on the node and expect a status. The small bounded HTTP/1.0 client
//! here is also what `lvs-node probe` uses (the agent carries no HTTP client crate).

use super::{connect, io_reason, Check, CheckResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Http {
    pub url: String,
    pub expect_status: u16,
}

impl Check for Http {
    async fn run(&self) -> CheckResult {
        let r = get(&self.url, 16 * 1024).await?;
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

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Splits `http://host:port/path` into (`host:port`, `host`, `/path`).
pub fn split_url(url: &str) -> Result<(String, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if auth.is_empty() || auth.contains('@') {
        return Err(format!("`{url}` has no usable host"));
    }
    let has_port = if auth.starts_with('[') {
        auth.contains("]:")
    } else {
        auth.contains(':')
    };
    let target = if has_port {
        auth.to_string()
    } else {
        format!("{auth}:80")
    };
    Ok((target, auth.to_string(), path.to_string()))
}

/// GET with `Connection: close`, reading at most `limit` bytes of the response. The caller
/// applies the timeout.
pub async fn get(url: &str, limit: usize) -> Result<Response, String> {
    let (target, host, path) = split_url(url)?;
    let mut s = connect(&target).await?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lvs-node/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| io_reason(&e))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| io_reason(&e))?;
        if n == 0 {
            break;
        }
        if buf.len() + n > limit {
            return Err(format!("response larger than {limit} bytes"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Result<Response, String> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("no complete HTTP header")?;
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let proto = parts.next().unwrap_or("");
    if !proto.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP response: {status_line:.60}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {status_line:.60}"))?;
    Ok(Response {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://192.0.2.11:8080/health").unwrap(),
            (
                "192.0.2.11:8080".into(),
                "192.0.2.11:8080".into(),
                "/health".into()
            )
        );
        assert_eq!(split_url("http://h").unwrap().0, "h:80");
        assert_eq!(split_url("http://[::1]:81/").unwrap().0, "[::1]:81");
        assert!(split_url("https://h/").is_err());
    }

    #[test]
    fn responses() {
        let r = parse_response(b"HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\nstate=down\n")
            .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "state=down\n");
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
