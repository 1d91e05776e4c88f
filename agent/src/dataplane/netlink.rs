//! Addresses and links through rtnetlink (never by spawning `ip`).
//! The VIP address flags live in one place: `vip_message`.

use super::ApplyError;
use futures::TryStreamExt;
use lvs_shared::config::Vip;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::Handle;
use std::net::IpAddr;

/// One address as the kernel reports it.
#[derive(Debug, Clone)]
pub struct AddrInfo {
    pub address: IpAddr,
    pub prefix: u8,
    pub index: u32,
    pub flags: AddressFlags,
}

impl AddrInfo {
    pub fn flag_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (f, n) in [
            (AddressFlags::Secondary, "secondary"),
            (AddressFlags::Nodad, "nodad"),
            (AddressFlags::Deprecated, "deprecated"),
            (AddressFlags::Tentative, "tentative"),
            (AddressFlags::Dadfailed, "dadfailed"),
            (AddressFlags::Noprefixroute, "noprefixroute"),
        ] {
            if self.flags.contains(f) {
                v.push(n);
            }
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub up: bool,
}

pub struct Netlink {
    handle: Handle,
}

fn nl_err(what: &str, e: rtnetlink::Error) -> ApplyError {
    ApplyError(format!("netlink: {what}: {e}"))
}

impl Netlink {
    pub fn connect() -> Result<Netlink, ApplyError> {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| ApplyError(format!("cannot open a netlink socket: {e}")))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn links(&self) -> Result<Vec<LinkInfo>, ApplyError> {
        let mut out = Vec::new();
        let mut s = self.handle.link().get().execute();
        while let Some(m) = s.try_next().await.map_err(|e| nl_err("list links", e))? {
            let name = m.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            out.push(LinkInfo {
                index: m.header.index,
                name: name.unwrap_or_default(),
                up: m.header.flags.contains(LinkFlags::Up),
            });
        }
        Ok(out)
    }

    pub async fn addresses(&self) -> Result<Vec<AddrInfo>, ApplyError> {
        let mut out = Vec::new();
        let mut s = self.handle.address().get().execute();
        while let Some(m) = s
            .try_next()
            .await
            .map_err(|e| nl_err("list addresses", e))?
        {
            if let Some(a) = parse_addr(&m) {
                out.push(a);
            }
        }
        Ok(out)
    }

    pub async fn add_vip(&self, vip: &Vip, index: u32, on_nic: bool) -> Result<(), ApplyError> {
        // NLM_F_REPLACE: creates the address, or fixes its flags and lifetimes in place
        // without a moment where the VIP is missing.
        let mut req = self
            .handle
            .address()
            .add(index, vip.address, vip.prefix)
            .replace();
        *req.message_mut() = vip_message(vip, index, on_nic);
        match req.execute().await {
            Ok(()) => Ok(()),
            // Already there (e.g. a racing repair): the desired state holds.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(e) => Err(nl_err(&format!("add {} dev #{index}", vip.cidr()), e)),
        }
    }

    /// Puts back an address removed or updated in this run with the flags it had
    /// (rollback). NLM_F_REPLACE: also resets the flags of an address still there.
    pub async fn restore_addr(&self, vip: &Vip, index: u32, flags: u32) -> Result<(), ApplyError> {
        let mut req = self
            .handle
            .address()
            .add(index, vip.address, vip.prefix)
            .replace();
        let mut m = vip_message(vip, index, false);
        m.attributes.retain(|a| {
            !matches!(
                a,
                AddressAttribute::Flags(_) | AddressAttribute::CacheInfo(_)
            )
        });
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
                flags,
            )));
        *req.message_mut() = m;
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(e) => Err(nl_err(&format!("restore {} dev #{index}", vip.cidr()), e)),
        }
    }

    pub async fn del_vip(&self, vip: &Vip, index: u32) -> Result<(), ApplyError> {
        let msg = vip_message(vip, index, false);
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            // Gone already: removal is idempotent.
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -libc::EADDRNOTAVAIL || e.raw_code() == -libc::ENODEV =>
            {
                Ok(())
            }
            Err(e) => Err(nl_err(&format!("delete {} dev #{index}", vip.cidr()), e)),
        }
    }
}

/// The address message for a VIP. Why these flags:
/// - IPv6: `nodad` (a VIP shared by every node would always fail DAD) and
///   `preferred_lft 0`, so the address is deprecated and the host's own connections never
///   leave from it (the Nebraska IPv6 gotcha); it stays valid forever.
/// - On the NIC: `noprefixroute`, so a VIP with a prefix never installs a connected route
///   whose source would be the VIP. IPv4 source selection skips it because the real IP is
///   the primary address and comes first.
pub fn vip_message(vip: &Vip, index: u32, on_nic: bool) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = vip.prefix;
    m.attributes.push(AddressAttribute::Local(vip.address));
    m.attributes.push(AddressAttribute::Address(vip.address));
    let mut flags = AddressFlags::empty();
    match vip.address {
        IpAddr::V4(_) => {
            m.header.family = netlink_packet_route::AddressFamily::Inet;
        }
        IpAddr::V6(_) => {
            m.header.family = netlink_packet_route::AddressFamily::Inet6;
            flags |= AddressFlags::Nodad;
            m.header.flags = AddressHeaderFlags::Nodad;
            let mut ci = CacheInfo::default();
            ci.ifa_preferred = 0;
            ci.ifa_valid = u32::MAX; // valid forever
            m.attributes.push(AddressAttribute::CacheInfo(ci));
        }
    }
    if on_nic {
        flags |= AddressFlags::Noprefixroute;
    }
    if !flags.is_empty() {
        m.attributes.push(AddressAttribute::Flags(flags));
    }
    m
}

fn parse_addr(m: &AddressMessage) -> Option<AddrInfo> {
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::from_bits_retain(m.header.flags.bits() as u32);
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    Some(AddrInfo {
        address: local.or(address)?,
        prefix: m.header.prefix_len,
        index: m.header.index,
        flags,
    })
}
