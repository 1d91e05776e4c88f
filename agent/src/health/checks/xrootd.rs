//! `xrootd`: proves that the XRootD server serves, not only that it accepts. The check runs
//! the protocol the way a client does (XRootD protocol specification, "Request/Response
//! Protocol"):
//!
//! 1. the initial handshake (0, 0, 0, 4, 2012 as big-endian int32) with a `kXR_protocol`
//!    request in the same write; the server answers the handshake (`kXR_ok`, protocol
//!    version, server type), then `kXR_protocol`;
//! 2. `kXR_login` as user `lvsnode` (with `login = true`, the default): a server answers
//!    `kXR_ping` and `kXR_stat` only after a login ("Invalid request; user not logged in");
//! 3. `kXR_ping`, answered by the server's request loop;
//! 4. with `stat = "/path"`, `kXR_stat` of that path: it must exist and be online.
//!
//! Everything the server sends is untrusted: each reply must carry the stream id of its
//! request and a known status, bodies are read only up to [`BODY_LIMIT`], and text from the
//! server (error messages, redirect hosts, security protocols) is reduced to printable ASCII
//! and shortened before it reaches a reason. Each step is bounded by the check's timeout,
//! and a reply that does not come names the step that waited.
//!
//! With `login = false` the check sends `kXR_ping` without logging in (every login is a
//! session in the server's log and in its monitoring stream, the `xrootd.monitor`
//! user records); the server's request loop then answers with `kXR_error`
//! (`kXR_InvalidRequest`, not logged in), which proves it is serving. `stat` needs a login.

use super::{connect, io_reason, Check, CheckResult};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const KXR_PROTOCOL: u16 = 3006;
const KXR_LOGIN: u16 = 3007;
const KXR_PING: u16 = 3011;
const KXR_STAT: u16 = 3017;

const KXR_OK: u16 = 0;
const KXR_OKSOFAR: u16 = 4000;
const KXR_ATTN: u16 = 4001;
const KXR_AUTHMORE: u16 = 4002;
const KXR_ERROR: u16 = 4003;
const KXR_REDIRECT: u16 = 4004;
const KXR_WAIT: u16 = 4005;
const KXR_WAITRESP: u16 = 4006;

/// kXR_error code: a request the server refuses in this state (e.g. before login).
const KXR_INVALID_REQUEST: u32 = 3006;
/// kXR_stat flag: the file is not on disk (tape only).
const KXR_OFFLINE: u64 = 8;
/// kXR_login capability: protocol version 5 clients.
const KXR_VER005: u8 = 5;

/// Protocol version the client advertises (5.2.0).
const CLIENT_PV: u32 = 0x0000_0520;
/// The user name of the login (8 bytes at most by the protocol).
pub const LOGIN_USER: &str = "lvsnode";
/// The longest reply body read. Login (16-byte session id and the security parameters),
/// stat and error replies are far below it.
pub const BODY_LIMIT: u32 = 4096;
/// How much of the server's text a reason may carry.
const TEXT_LIMIT: usize = 160;

pub struct Xrootd {
    pub target: String,
    pub login: bool,
    pub stat: Option<String>,
    /// The check's timeout: the conversation gets nine tenths of it, so that a step that
    /// waits is named before the runner's own timeout fires.
    pub timeout: Duration,
}

impl Check for Xrootd {
    async fn run(&self) -> CheckResult {
        let step = Mutex::new("connect");
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

impl Xrootd {
    async fn talk(&self, step: &Mutex<&'static str>) -> CheckResult {
        let at = |s: &'static str| {
            if let Ok(mut g) = step.lock() {
                *g = s;
            }
        };
        let mut s = connect(&self.target).await?;
        at("handshake");
        s.write_all(&handshake()).await.map_err(|e| io_reason(&e))?;
        // Handshake answer: 8-byte response header + 8 bytes (protover, server type).
        let mut hs = [0u8; 16];
        s.read_exact(&mut hs)
            .await
            .map_err(|e| format!("handshake: {}", io_reason(&e)))?;
        let (pv, kind) = parse_handshake(&hs)?;
        at("kXR_protocol");
        let r = read_reply(&mut s, [0, 0]).await?;
        expect_ok("kXR_protocol", &r)?;
        let mut detail = format!("protocol {pv:#x}, {kind}");
        if self.login {
            at("kXR_login");
            s.write_all(&login_request([0, 1], std::process::id()))
                .await
                .map_err(|e| io_reason(&e))?;
            let r = read_reply(&mut s, [0, 1]).await?;
            expect_ok("kXR_login", &r)?;
            let sec = parse_login(&r.body)?;
            detail.push_str(", login ok");
            if !sec.is_empty() {
                detail.push_str(&format!(" (server asks for authentication: {sec})"));
            }
            at("kXR_ping");
            s.write_all(&request([0, 2], KXR_PING, [0; 16], b""))
                .await
                .map_err(|e| io_reason(&e))?;
            let r = read_reply(&mut s, [0, 2]).await?;
            expect_ok("kXR_ping", &r)?;
            if !r.body.is_empty() {
                return Err(format!("kXR_ping answered with {} bytes", r.body.len()));
            }
            detail.push_str(", ping ok");
            if let Some(path) = &self.stat {
                at("kXR_stat");
                s.write_all(&request([0, 3], KXR_STAT, [0; 16], path.as_bytes()))
                    .await
                    .map_err(|e| io_reason(&e))?;
                let r = read_reply(&mut s, [0, 3]).await?;
                if r.status == KXR_REDIRECT {
                    // A redirector located the file on a data server: it serves.
                    let to = parse_redirect(&r.body)?;
                    detail.push_str(&format!(", stat {path} redirected to {to}"));
                } else {
                    expect_ok(&format!("kXR_stat {path}"), &r).map_err(|e| {
                        if sec.is_empty() {
                            e
                        } else {
                            format!("{e} (the server asks for {sec}, which this check does not do: stat a path that needs no authentication, or remove `stat`)")
                        }
                    })?;
                    let st = parse_stat(&r.body)?;
                    if st.flags & KXR_OFFLINE != 0 {
                        return Err(format!("kXR_stat {path}: offline (not on disk)"));
                    }
                    detail.push_str(&format!(", stat {path} ok ({} bytes)", st.size));
                }
            }
        } else {
            at("kXR_ping");
            s.write_all(&request([0, 2], KXR_PING, [0; 16], b""))
                .await
                .map_err(|e| io_reason(&e))?;
            let r = read_reply(&mut s, [0, 2]).await?;
            match r.status {
                KXR_OK if r.body.is_empty() => detail.push_str(", ping ok"),
                KXR_ERROR if parse_error(&r.body)?.0 == KXR_INVALID_REQUEST => {
                    detail.push_str(", ping answered (not logged in)")
                }
                _ => expect_ok("kXR_ping", &r).map(|_| ())?,
            }
        }
        Ok(detail)
    }
}

/// One reply: its status and its body, read up to [`BODY_LIMIT`].
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Reads one reply to the request sent with `streamid`. A reply for another stream, a
/// status the protocol does not define or a body over the limit is refused.
pub async fn read_reply<R: AsyncRead + Unpin>(
    s: &mut R,
    streamid: [u8; 2],
) -> Result<Reply, String> {
    let mut hdr = [0u8; 8];
    s.read_exact(&mut hdr).await.map_err(|e| io_reason(&e))?;
    let status = u16::from_be_bytes([hdr[2], hdr[3]]);
    let dlen = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if hdr[..2] != streamid {
        return Err(format!(
            "reply for stream {:02x}{:02x}, expected {:02x}{:02x}",
            hdr[0], hdr[1], streamid[0], streamid[1]
        ));
    }
    if !matches!(status, KXR_OK | KXR_OKSOFAR..=KXR_WAITRESP) {
        return Err(format!("reply with unknown status {status}"));
    }
    if dlen > BODY_LIMIT {
        return Err(format!("reply body of {dlen} bytes (limit {BODY_LIMIT})"));
    }
    let mut body = vec![0u8; dlen as usize];
    s.read_exact(&mut body).await.map_err(|e| io_reason(&e))?;
    Ok(Reply { status, body })
}

/// `Ok` for `kXR_ok`; otherwise the reason, with the server's own words for errors.
fn expect_ok(what: &str, r: &Reply) -> Result<(), String> {
    match r.status {
        KXR_OK => Ok(()),
        KXR_ERROR => {
            let (code, msg) = parse_error(&r.body)?;
            Err(format!("{what}: {} ({code}): {msg}", error_name(code)))
        }
        KXR_WAIT => {
            let secs = r
                .body
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| format!("{what}: kXR_wait without its seconds"))?;
            Err(format!(
                "{what}: the server asks to wait {secs} s (kXR_wait)"
            ))
        }
        KXR_WAITRESP => Err(format!(
            "{what}: the server defers its answer (kXR_waitresp)"
        )),
        KXR_REDIRECT => Err(format!(
            "{what}: redirected to {}",
            parse_redirect(&r.body)?
        )),
        KXR_OKSOFAR => Err(format!("{what}: a partial answer (kXR_oksofar)")),
        KXR_ATTN => Err(format!("{what}: an unsolicited kXR_attn")),
        KXR_AUTHMORE => Err(format!("{what}: kXR_authmore")),
        s => Err(format!("{what}: status {s}")),
    }
}

/// The error code and message of a `kXR_error` body.
pub fn parse_error(body: &[u8]) -> Result<(u32, String), String> {
    let code = body
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or("kXR_error without its error code")?;
    Ok((code, text(&body[4..])))
}

/// `host:port` of a `kXR_redirect` body, made printable.
pub fn parse_redirect(body: &[u8]) -> Result<String, String> {
    let port = body
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or("kXR_redirect without its port")?;
    let host = text(&body[4..]);
    // The host may carry CGI after '?': only the host itself is named.
    let host = host.split('?').next().unwrap_or_default();
    if host.is_empty() {
        return Err("kXR_redirect without a host".into());
    }
    Ok(format!("{host}:{port}"))
}

/// The security protocols a login reply asks for (`&P=gsi,...&P=unix`), or "" when the
/// server asks for none. The first 16 bytes are the session id.
pub fn parse_login(body: &[u8]) -> Result<String, String> {
    if body.len() < 16 {
        return Err(format!(
            "kXR_login reply of {} bytes, shorter than its 16-byte session id",
            body.len()
        ));
    }
    let sec = text(&body[16..]);
    let protocols: Vec<&str> = sec
        .split('&')
        .filter_map(|p| p.strip_prefix("P="))
        .map(|p| p.split(',').next().unwrap_or(p))
        .filter(|p| !p.is_empty())
        .collect();
    Ok(protocols.join(", "))
}

#[derive(Debug, PartialEq)]
pub struct Stat {
    pub size: u64,
    pub flags: u64,
}

/// A `kXR_stat` reply: "id size flags modtime" (newer servers add more fields), ASCII,
/// NUL-terminated.
pub fn parse_stat(body: &[u8]) -> Result<Stat, String> {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let s = std::str::from_utf8(&body[..end]).map_err(|_| "kXR_stat reply is not text")?;
    let f: Vec<&str> = s.split_ascii_whitespace().collect();
    let num = |i: usize, what: &str| -> Result<u64, String> {
        f.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| {
            format!(
                "kXR_stat reply without a numeric {what}: `{}`",
                text(s.as_bytes())
            )
        })
    };
    num(0, "id")?;
    let size = num(1, "size")?;
    let flags = num(2, "flags")?;
    num(3, "modification time")?;
    Ok(Stat { size, flags })
}

/// Server text made safe for a reason: up to the first NUL, printable ASCII only (others
/// become '?'), at most [`TEXT_LIMIT`] characters.
pub fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let mut s: String = b[..end]
        .iter()
        .take(TEXT_LIMIT)
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    if end > TEXT_LIMIT {
        s.push_str("...");
    }
    s.trim().to_string()
}

fn error_name(code: u32) -> &'static str {
    match code {
        3000 => "kXR_ArgInvalid",
        3001 => "kXR_ArgMissing",
        3002 => "kXR_ArgTooLong",
        3005 => "kXR_FSError",
        3006 => "kXR_InvalidRequest",
        3007 => "kXR_IOError",
        3008 => "kXR_NoMemory",
        3009 => "kXR_NoSpace",
        3010 => "kXR_NotAuthorized",
        3011 => "kXR_NotFound",
        3012 => "kXR_ServerError",
        3013 => "kXR_Unsupported",
        3014 => "kXR_noserver",
        3015 => "kXR_NotFile",
        3016 => "kXR_isDirectory",
        _ => "error",
    }
}

/// A request: stream id, request id, 16 parameter bytes, then `data` with its length.
pub fn request(streamid: [u8; 2], id: u16, params: [u8; 16], data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + data.len());
    b.extend_from_slice(&streamid);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&params);
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

/// `kXR_login`: pid, the user name (8 bytes, NUL-padded), then ability and capability.
pub fn login_request(streamid: [u8; 2], pid: u32) -> Vec<u8> {
    let mut p = [0u8; 16];
    p[..4].copy_from_slice(&pid.to_be_bytes());
    p[4..4 + LOGIN_USER.len()].copy_from_slice(LOGIN_USER.as_bytes());
    // p[12]: ability2, p[13]: ability (none), p[14]: capver, p[15]: reserved.
    p[14] = KXR_VER005;
    request(streamid, KXR_LOGIN, p, b"")
}

/// Handshake + kXR_protocol, sent in one write as current clients do.
pub fn handshake() -> Vec<u8> {
    let mut b = Vec::with_capacity(44);
    for v in [0u32, 0, 0, 4, 2012] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    let mut p = [0u8; 16];
    p[..4].copy_from_slice(&CLIENT_PV.to_be_bytes());
    b.extend_from_slice(&request([0, 0], KXR_PROTOCOL, p, b""));
    b
}

pub fn parse_handshake(hs: &[u8; 16]) -> Result<(u32, &'static str), String> {
    let status = u16::from_be_bytes([hs[2], hs[3]]);
    let dlen = u32::from_be_bytes([hs[4], hs[5], hs[6], hs[7]]);
    if status != KXR_OK || dlen != 8 {
        return Err(format!(
            "not an XRootD handshake reply (status {status}, dlen {dlen})"
        ));
    }
    let pv = u32::from_be_bytes([hs[8], hs[9], hs[10], hs[11]]);
    let kind = match u32::from_be_bytes([hs[12], hs[13], hs[14], hs[15]]) {
        0 => "load balancer",
        1 => "data server",
        _ => "unknown server type",
    };
    Ok((pv, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let r = handshake();
        assert_eq!(
            &r[..20],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 7, 0xDC]
        );
        assert_eq!(r.len(), 44);
        assert_eq!(&r[22..24], &[0x0B, 0xBE]);
        let l = login_request([0, 1], 0x01020304);
        assert_eq!(l.len(), 24);
        assert_eq!(&l[2..4], &3007u16.to_be_bytes());
        assert_eq!(&l[4..8], &[1, 2, 3, 4]);
        assert_eq!(&l[8..16], b"lvsnode\0");
        assert_eq!(l[18], 5);
        let s = request([0, 3], KXR_STAT, [0; 16], b"/data/f");
        assert_eq!(&s[20..24], &7u32.to_be_bytes());
        assert_eq!(&s[24..], b"/data/f");
    }

    #[test]
    fn replies_are_validated() {
        assert_eq!(
            parse_stat(
                b"42995667764837888 6 48 1796627465 1796627465 1796627465 0644 nobody root\0"
            )
            .unwrap(),
            Stat { size: 6, flags: 48 }
        );
        assert!(parse_stat(b"12 x 0 0\0").unwrap_err().contains("size"));
        assert!(parse_stat(b"\xff\xfe").is_err());
        assert_eq!(parse_login(&[0; 16]).unwrap(), "");
        let mut l = vec![0u8; 16];
        l.extend_from_slice(b"&P=gsi,v:10400,c:ssl&P=unix");
        assert_eq!(parse_login(&l).unwrap(), "gsi, unix");
        assert!(parse_login(&[0; 8]).is_err());
        let (c, m) = parse_error(b"\0\0\x0b\xc3Unable to locate /x;\x1b[31m red\0junk").unwrap();
        assert_eq!(c, 3011);
        assert_eq!(m, "Unable to locate /x;?[31m red");
        assert!(parse_error(b"\0\0").is_err());
        assert_eq!(text(&[b'a'; 500]).len(), TEXT_LIMIT + 3);
        assert_eq!(
            parse_redirect(b"\0\0\x04\x46data1.example.org?tried=x").unwrap(),
            "data1.example.org:1094"
        );
    }

    #[tokio::test]
    async fn hostile_replies_are_refused() {
        // Another stream's reply, an unknown status, a body over the limit.
        let cases: [(&[u8], &str); 3] = [
            (&[0, 9, 0, 0, 0, 0, 0, 0], "reply for stream 0009"),
            (&[0, 1, 0x0f, 0xff, 0, 0, 0, 0], "unknown status 4095"),
            (&[0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff], "limit 4096"),
        ];
        for (bytes, want) in cases {
            let mut r = bytes;
            let e = read_reply(&mut r, [0, 1]).await.unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    /// A server that completes the handshake and the login, then answers nothing: the
    /// reason names the step that waited.
    #[tokio::test]
    async fn a_silent_ping_is_named() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 44];
            s.read_exact(&mut req).await.unwrap();
            let mut out = vec![0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 5, 0x20, 0, 0, 0, 1];
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 5, 0x20, 0, 0, 0, 1]);
            s.write_all(&out).await.unwrap();
            let mut login = [0u8; 24];
            s.read_exact(&mut login).await.unwrap();
            let mut out = vec![0, 1, 0, 0, 0, 0, 0, 16];
            out.extend_from_slice(&[7; 16]);
            s.write_all(&out).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let e = Xrootd {
            target: addr.to_string(),
            login: true,
            stat: None,
            timeout: Duration::from_millis(300),
        }
        .run()
        .await
        .unwrap_err();
        assert!(e.starts_with("kXR_ping: no answer within"), "{e}");
    }
}
