//! Counts established TCP sessions to the VIPs' service ports with netlink sock_diag
//! (the kernel's socket table, not a /proc parse that is slow and racy on busy nodes).

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};
use std::io;
use std::net::{IpAddr, SocketAddr as InetAddr};

/// Established sessions whose local end is one of `locals` (VIP:port). Blocking: call from
/// a blocking thread or a CLI.
///
/// A dump walks the kernel's whole established-socket hash table (shared by every network
/// namespace, and sized by the host's memory), whatever it holds: a family no VIP:port
/// belongs to is not dumped, and no `locals` means no dump at all. An IPv4 VIP can still be
/// reached through a dual-stack socket, which reports it IPv4-mapped in the IPv6 dump, so
/// IPv4 endpoints dump both families.
pub fn count_established(locals: &[InetAddr]) -> io::Result<u64> {
    let mut n = 0;
    let v4 = locals.iter().any(|a| a.is_ipv4());
    let v6 = locals.iter().any(|a| a.is_ipv6());
    let families = [(AF_INET, v4), (AF_INET6, v4 || v6)];
    for family in families.iter().filter(|f| f.1).map(|f| f.0) {
        dump(family, |local| {
            if locals.contains(&local) {
                n += 1;
            }
        })?;
    }
    Ok(n)
}

/// Every VIP:port pair the config balances.
pub fn vip_endpoints(cfg: &lvs_shared::config::NodeConfig) -> Vec<InetAddr> {
    cfg.vips
        .iter()
        .flat_map(|v| v.ports.iter().map(move |p| InetAddr::new(v.address, *p)))
        .collect()
}

fn dump(family: u8, mut each: impl FnMut(InetAddr)) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut msg = NetlinkMessage::new(
        hdr,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::ESTABLISHED,
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    msg.finalize();
    let mut buf = vec![0; msg.header.length as usize];
    msg.serialize(&mut buf[..]);
    socket.send(&buf, 0)?;
    loop {
        let (data, _) = socket.recv_from_full()?;
        let mut off = 0;
        while off < data.len() {
            let m = <NetlinkMessage<SockDiagMessage>>::deserialize(&data[off..])
                .map_err(|e| io::Error::other(e.to_string()))?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    each(InetAddr::new(
                        unmap(r.header.socket_id.source_address),
                        r.header.socket_id.source_port,
                    ));
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(io::Error::other(format!("sock_diag: {e:?}")));
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}

/// A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loopback_sessions() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(count_established(&[addr]).unwrap(), 0);
        let _c1 = std::net::TcpStream::connect(addr).unwrap();
        let _c2 = std::net::TcpStream::connect(addr).unwrap();
        let _a1 = l.accept().unwrap();
        let _a2 = l.accept().unwrap();
        assert_eq!(count_established(&[addr]).unwrap(), 2);
        assert_eq!(count_established(&[]).unwrap(), 0);
    }
}
