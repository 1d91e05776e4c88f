//! `gridftp`: connect, read the `220` banner, send `QUIT`, expect `221`. One command at a
//! time: the server answers pipelined commands with `421`. globus-gridftp-server 13.24
//! answers QUIT with `211 Goodbye.` (seen in the lab), so any 2xx reply to QUIT passes.

use super::{connect, io_reason, Check, CheckResult};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

/// Bounds on one reply, so a broken or hostile server cannot make the check grow.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 64;

pub struct Gridftp {
    pub target: String,
}

impl Check for Gridftp {
    async fn run(&self) -> CheckResult {
        let stream = connect(&self.target).await?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let (code, text) = read_reply(&mut r).await?;
        if code != 220 {
            return Err(format!("banner {code} {text}"));
        }
        w.write_all(b"QUIT\r\n").await.map_err(|e| io_reason(&e))?;
        let (qcode, qtext) = read_reply(&mut r).await?;
        if !(200..300).contains(&qcode) {
            return Err(format!("QUIT answered {qcode} {qtext}"));
        }
        Ok(format!("220 {}", text.trim()))
    }
}

/// Reads one FTP reply (RFC 959 4.2): `NNN text`, or `NNN-` lines until `NNN text`.
/// Returns the code and the first line's text.
pub async fn read_reply<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
) -> Result<(u16, String), String> {
    let mut first: Option<(u16, String)> = None;
    for _ in 0..MAX_LINES {
        let line = read_line(r).await?;
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..600).contains(c));
        let sep = line.as_bytes().get(3).copied();
        match (&first, code) {
            (None, Some(c)) => {
                let text = line.get(4..).unwrap_or("").to_string();
                if sep != Some(b'-') {
                    return Ok((c, text));
                }
                first = Some((c, text));
            }
            (None, None) => return Err(format!("not an FTP reply: {:.80}", line)),
            // Continuation lines end with the same code followed by a space.
            (Some((c0, _)), Some(c)) if c == *c0 && sep != Some(b'-') => {
                return Ok(first.take().unwrap_or_default());
            }
            (Some(_), _) => {}
        }
    }
    Err("reply has too many lines".into())
}

async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<String, String> {
    let mut buf = Vec::new();
    loop {
        let avail = r.fill_buf().await.map_err(|e| io_reason(&e))?;
        if avail.is_empty() {
            return Err("connection closed before a reply".into());
        }
        let (used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        buf.extend_from_slice(&avail[..used]);
        r.consume(used);
        if buf.len() > MAX_LINE {
            return Err("reply line too long".into());
        }
        if done {
            let s = String::from_utf8_lossy(&buf);
            return Ok(s.trim_end_matches(['\r', '\n']).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn reply(s: &str) -> Result<(u16, String), String> {
        let mut r = BufReader::new(s.as_bytes());
        read_reply(&mut r).await
    }

    #[tokio::test]
    async fn parses_replies() {
        assert_eq!(
            reply("220 host GridFTP Server ready.\r\n").await.unwrap().0,
            220
        );
        let (c, t) = reply("220-hello\r\n more\r\n220-x\r\n220 done\r\n")
            .await
            .unwrap();
        assert_eq!((c, t.as_str()), (220, "hello"));
        assert!(reply("").await.is_err());
        assert!(reply("SSH-2.0-OpenSSH\r\n").await.is_err());
        assert_eq!(reply("421 busy\r\n").await.unwrap().0, 421);
    }

    #[tokio::test]
    async fn talks_to_a_fake_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"220-GridFTP\r\n220 ready.\r\n").await.unwrap();
            let mut r = BufReader::new(&mut s);
            let mut l = String::new();
            r.read_line(&mut l).await.unwrap();
            assert_eq!(l, "QUIT\r\n");
            s.write_all(b"221 Goodbye.\r\n").await.unwrap();
        });
        let c = Gridftp {
            target: addr.to_string(),
        };
        assert!(c.run().await.is_ok());
        let c = Gridftp {
            target: "127.0.0.1:1".into(),
        };
        assert_eq!(c.run().await.unwrap_err(), "connection refused");
    }
}
