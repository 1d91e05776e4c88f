//! The sockets of RFC 5881 single-hop BFD: one receive socket on UDP 3784 of the source
//! address that reports each packet's TTL (IP_RECVTTL / IPV6_RECVHOPLIMIT), and one send
//! socket per session from a source port in 49152-65535 with TTL 255, so a director can
//! tell the packets were not forwarded by a router (the GTSM check of RFC 5881 section 5).
//! Sent packets carry DSCP CS6 (network control), the class routers give their own
//! keepalives, so a site's switches and `tc` filters can keep BFD ahead of bulk transfers.

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The single-hop control port (RFC 5881 section 4).
pub const PORT: u16 = 3784;
/// The TTL or hop limit sent, and the only one accepted.
pub const TTL: u8 = 255;
const SRC_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// DSCP CS6 (48) in the IPv4 TOS / IPv6 traffic class byte.
pub const TOS_CS6: u8 = 48 << 2;

/// Binds the receive socket on `source`:3784.
pub fn bind_rx(source: IpAddr) -> io::Result<UdpSocket> {
    let std = std::net::UdpSocket::bind(SocketAddr::new(source, PORT))?;
    std.set_nonblocking(true)?;
    let s = UdpSocket::from_std(std)?;
    if source.is_ipv4() {
        socket::setsockopt(&s, sockopt::Ipv4RecvTtl, &true)?;
    } else {
        socket::setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)?;
    }
    Ok(s)
}

/// Binds a send socket on `source` at a free port of 49152-65535, TTL 255, DSCP CS6.
pub fn bind_tx(source: IpAddr) -> io::Result<UdpSocket> {
    let span = u32::from(SRC_PORTS.end() - SRC_PORTS.start()) + 1;
    let first = fastrand::u32(0..span);
    let mut last = None;
    // A random start spreads sessions; walking on finds a free port when some are taken.
    for i in 0..span.min(4096) {
        let port = SRC_PORTS.start() + ((first + i) % span) as u16;
        match std::net::UdpSocket::bind(SocketAddr::new(source, port)) {
            Ok(std) => {
                std.set_nonblocking(true)?;
                let s = UdpSocket::from_std(std)?;
                if source.is_ipv4() {
                    socket::setsockopt(&s, sockopt::Ipv4Ttl, &i32::from(TTL))?;
                    socket::setsockopt(&s, sockopt::Ipv4Tos, &i32::from(TOS_CS6))?;
                } else {
                    socket::setsockopt(&s, sockopt::Ipv6Ttl, &i32::from(TTL))?;
                    socket::setsockopt(&s, sockopt::Ipv6TClass, &i32::from(TOS_CS6))?;
                }
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free source port in 49152-65535")))
}

/// One received datagram: its bytes, sender and TTL (None when the kernel gave none).
pub struct Datagram {
    pub len: usize,
    pub from: SocketAddr,
    pub ttl: Option<u8>,
}

/// Receives one datagram into `buf`, with its TTL.
pub async fn recv(s: &UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
    loop {
        s.readable().await?;
        let r = s.try_io(Interest::READABLE, || {
            let fd = s.as_raw_fd();
            let mut iov = [IoSliceMut::new(buf)];
            let mut cmsg = nix::cmsg_space!(libc::c_int, libc::c_int);
            let m = socket::recvmsg::<SockaddrStorage>(
                fd,
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            )
            .map_err(io::Error::from)?;
            let mut ttl = None;
            for c in m.cmsgs().map_err(io::Error::from)? {
                match c {
                    ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).ok(),
                    ControlMessageOwned::Ipv6HopLimit(t) => ttl = u8::try_from(t).ok(),
                    _ => {}
                }
            }
            let from = m
                .address
                .and_then(|a| {
                    a.as_sockaddr_in()
                        .map(|v| SocketAddr::from(std::net::SocketAddrV4::from(*v)))
                        .or_else(|| {
                            a.as_sockaddr_in6()
                                .map(|v| SocketAddr::from(std::net::SocketAddrV6::from(*v)))
                        })
                })
                .ok_or_else(|| io::Error::other("datagram without a sender address"))?;
            Ok(Datagram {
                len: m.bytes,
                from,
                ttl,
            })
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}
