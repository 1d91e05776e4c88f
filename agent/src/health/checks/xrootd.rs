//! `xrootd`: the XRootD initial handshake. The client sends the 20-byte handshake
//! (0, 0, 0, 4, 2012 as big-endian int32) followed by a `kXR_protocol` request; the server
//! answers the handshake with `streamid=0 status=kXR_ok dlen=8` + protocol version + server
//! type, then answers `kXR_protocol`.

use super::{connect, io_reason, Check, CheckResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KXR_PROTOCOL: u16 = 3006;
const KXR_OK: u16 = 0;
/// Protocol version the client advertises (5.2.0).
const CLIENT_PV: u32 = 0x0000_0520;

pub struct Xrootd {
    pub target: String,
}

impl Check for Xrootd {
    async fn run(&self) -> CheckResult {
        let mut s = connect(&self.target).await?;
        s.write_all(&request()).await.map_err(|e| io_reason(&e))?;
        // Handshake answer: 8-byte response header + 8 bytes (protover, server type).
        let mut hs = [0u8; 16];
        s.read_exact(&mut hs).await.map_err(|e| io_reason(&e))?;
        let (pv, kind) = parse_handshake(&hs)?;
        // kXR_protocol answer: header, then a bounded body.
        let mut hdr = [0u8; 8];
        s.read_exact(&mut hdr).await.map_err(|e| io_reason(&e))?;
        let status = u16::from_be_bytes([hdr[2], hdr[3]]);
        let dlen = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if status != KXR_OK {
            return Err(format!("kXR_protocol answered status {status}"));
        }
        if dlen > 4096 {
            return Err(format!("kXR_protocol body of {dlen} bytes"));
        }
        let mut body = vec![0u8; dlen as usize];
        s.read_exact(&mut body).await.map_err(|e| io_reason(&e))?;
        Ok(format!("protocol {pv:#x}, {kind}"))
    }
}

/// Handshake + kXR_protocol, sent in one write as current clients do.
pub fn request() -> Vec<u8> {
    let mut b = Vec::with_capacity(44);
    for v in [0u32, 0, 0, 4, 2012] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&[0, 0]); // streamid
    b.extend_from_slice(&KXR_PROTOCOL.to_be_bytes());
    b.extend_from_slice(&CLIENT_PV.to_be_bytes());
    b.push(0); // options
    b.push(0); // expect
    b.extend_from_slice(&[0u8; 10]); // reserved
    b.extend_from_slice(&0u32.to_be_bytes()); // dlen
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
        let r = request();
        assert_eq!(
            &r[..20],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 7, 0xDC]
        );
        assert_eq!(r.len(), 44);
        assert_eq!(&r[22..24], &[0x0B, 0xBE]);
    }

    #[tokio::test]
    async fn fake_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 44];
            s.read_exact(&mut req).await.unwrap();
            assert_eq!(req[19], 0xDC);
            let mut out = vec![0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 5, 0x20, 0, 0, 0, 1];
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 5, 0x20, 0, 0, 0, 1]);
            s.write_all(&out).await.unwrap();
        });
        let r = Xrootd {
            target: addr.to_string(),
        }
        .run()
        .await
        .unwrap();
        assert!(r.contains("data server"), "{r}");
    }
}
