//! The BFD Control packet (RFC 5880 section 4.1) without authentication, and the
//! reception checks of section 6.8.6 that need only the packet itself.

use std::fmt;

/// The mandatory section is 24 bytes; this speaker never sends an authentication section.
pub const LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            State::AdminDown => "admin_down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

/// The diagnostic codes of RFC 5880 section 4.1 this speaker sets or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Diag {
    None = 0,
    TimeExpired = 1,
    EchoFailed = 2,
    NeighborDown = 3,
    ForwardingReset = 4,
    PathDown = 5,
    ConcatPathDown = 6,
    AdminDown = 7,
    ReverseConcatPathDown = 8,
    /// 9..31: reserved.
    Other = 31,
}

impl Diag {
    fn from_bits(b: u8) -> Diag {
        match b & 0x1f {
            0 => Diag::None,
            1 => Diag::TimeExpired,
            2 => Diag::EchoFailed,
            3 => Diag::NeighborDown,
            4 => Diag::ForwardingReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatPathDown,
            7 => Diag::AdminDown,
            8 => Diag::ReverseConcatPathDown,
            _ => Diag::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Diag::None => "none",
            Diag::TimeExpired => "time_expired",
            Diag::EchoFailed => "echo_failed",
            Diag::NeighborDown => "neighbor_down",
            Diag::ForwardingReset => "forwarding_reset",
            Diag::PathDown => "path_down",
            Diag::ConcatPathDown => "concat_path_down",
            Diag::AdminDown => "admin_down",
            Diag::ReverseConcatPathDown => "reverse_concat_path_down",
            Diag::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_disc: u32,
    pub your_disc: u32,
    /// Microseconds, as on the wire.
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
}

/// Why a received packet was discarded (section 6.8.6), for the log and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    Short,
    Version,
    Length,
    DetectMult,
    Multipoint,
    MyDisc,
    YourDisc,
    Auth,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reject::Short => "shorter than 24 bytes",
            Reject::Version => "version is not 1",
            Reject::Length => "length field is below 24 or beyond the payload",
            Reject::DetectMult => "detect multiplier is zero",
            Reject::Multipoint => "multipoint bit set",
            Reject::MyDisc => "my discriminator is zero",
            Reject::YourDisc => "your discriminator is zero outside Down/AdminDown",
            Reject::Auth => "authentication requested but not configured",
        })
    }
}

impl Packet {
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (1 << 5) | (self.diag as u8 & 0x1f);
        b[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_disc.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_disc.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        b
    }

    /// Decodes and applies the checks of section 6.8.6 that need no session.
    pub fn decode(b: &[u8]) -> Result<Packet, Reject> {
        if b.len() < LEN {
            return Err(Reject::Short);
        }
        if b[0] >> 5 != 1 {
            return Err(Reject::Version);
        }
        let auth = b[1] & 0x04 != 0;
        let len = b[3] as usize;
        let min = if auth { LEN + 2 } else { LEN };
        if len < min || len > b.len() {
            return Err(Reject::Length);
        }
        if b[2] == 0 {
            return Err(Reject::DetectMult);
        }
        if b[1] & 0x01 != 0 {
            return Err(Reject::Multipoint);
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let p = Packet {
            diag: Diag::from_bits(b[0]),
            state: State::from_bits(b[1] >> 6),
            poll: b[1] & 0x20 != 0,
            final_: b[1] & 0x10 != 0,
            demand: b[1] & 0x02 != 0,
            detect_mult: b[2],
            my_disc: u32_at(4),
            your_disc: u32_at(8),
            desired_min_tx: u32_at(12),
            required_min_rx: u32_at(16),
            required_min_echo_rx: u32_at(20),
        };
        if p.my_disc == 0 {
            return Err(Reject::MyDisc);
        }
        if p.your_disc == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(Reject::YourDisc);
        }
        // No authentication is configured on this side (section 6.8.6: discard).
        if auth {
            return Err(Reject::Auth);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Packet {
        Packet {
            diag: Diag::AdminDown,
            state: State::AdminDown,
            poll: true,
            final_: false,
            demand: false,
            detect_mult: 3,
            my_disc: 0x01020304,
            your_disc: 7,
            desired_min_tx: 50_000,
            required_min_rx: 50_000,
            required_min_echo_rx: 0,
        }
    }

    #[test]
    fn round_trip_and_wire_layout() {
        let p = sample();
        let b = p.encode();
        assert_eq!(b[0], 0x27, "version 1, diag 7");
        assert_eq!(b[1], 0x20, "state AdminDown, P");
        assert_eq!(b[3], 24);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(Packet::decode(&b).unwrap(), p);
        let mut up = p;
        up.state = State::Up;
        up.poll = false;
        up.final_ = true;
        assert_eq!(up.encode()[1], 0xd0);
        assert_eq!(Packet::decode(&up.encode()).unwrap(), up);
    }

    #[test]
    fn validation_of_6_8_6() {
        let good = sample().encode();
        assert_eq!(Packet::decode(&good[..23]), Err(Reject::Short));
        let mut b = good;
        b[0] = (2 << 5) | 7;
        assert_eq!(Packet::decode(&b), Err(Reject::Version));
        let mut b = good;
        b[3] = 20;
        assert_eq!(Packet::decode(&b), Err(Reject::Length));
        let mut b = good;
        b[3] = 40;
        assert_eq!(Packet::decode(&b), Err(Reject::Length));
        let mut b = good;
        b[2] = 0;
        assert_eq!(Packet::decode(&b), Err(Reject::DetectMult));
        let mut b = good;
        b[1] |= 1;
        assert_eq!(Packet::decode(&b), Err(Reject::Multipoint));
        let mut b = good;
        b[4..8].copy_from_slice(&[0; 4]);
        assert_eq!(Packet::decode(&b), Err(Reject::MyDisc));
        let mut p = sample();
        p.your_disc = 0;
        assert!(
            Packet::decode(&p.encode()).is_ok(),
            "zero your_disc in AdminDown"
        );
        p.state = State::Up;
        assert_eq!(Packet::decode(&p.encode()), Err(Reject::YourDisc));
        let mut v = good.to_vec();
        v[1] |= 0x04;
        v[3] = 26;
        v.extend_from_slice(&[1, 2]);
        assert_eq!(Packet::decode(&v), Err(Reject::Auth));
        // A longer datagram than the length field is fine (trailing bytes ignored).
        let mut v = good.to_vec();
        v.push(0);
        assert!(Packet::decode(&v).is_ok());
    }
}
