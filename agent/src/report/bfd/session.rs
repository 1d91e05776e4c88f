//! One BFD session in asynchronous mode (RFC 5880 section 6.8): the state variables of
//! 6.8.1, reception (6.8.6), the detection time (6.8.4), the transmit interval with jitter
//! (6.8.2, 6.8.7), timer changes through a Poll Sequence (6.8.3) and administrative control
//! (6.8.16). No I/O and no clock: callers pass `now` and send what comes back, so the
//! state machine is tested from the RFC's tables alone.
//!
//! The remote's timers are untrusted input (a director, or whoever forges its address):
//! they are clamped so that no packet can slow this side below one packet per
//! max(1 s, min_tx) or stretch the detection time past max(1 s, min_rx) x max(multiplier, 3)
//! (see [`Session::receive`]). A remote Required Min RX of zero is honoured (no periodic
//! packets, 6.8.7) only while that remote keeps talking: a detection timeout or an
//! administrative reset forgets it.

use super::packet::{Diag, Packet, State};
use std::time::{Duration, Instant};

/// While the session is not Up, the transmit interval is at least one second (6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// The detection time is capped at this many of the longest accepted remote intervals,
/// or at the configured multiplier when that is larger.
pub const MIN_DETECT_CAP_MULT: u32 = 3;

/// The shortest spacing of periodic packets, as a share of the interval (6.8.7: reduced
/// by at most 25 %).
const JITTER_FLOOR: f64 = 0.75;

/// 6.8.1: bfd.RemoteMinRxInterval before the remote has spoken (and after it is forgotten).
const REMOTE_MIN_RX_INIT: Duration = Duration::from_micros(1);

/// Why the local state changed, for the log and the transition counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The remote system's state drove the table of 6.8.6.
    Remote,
    /// The remote system said AdminDown or Down (diagnostic 3).
    NeighborDown,
    /// The detection time passed without a packet (diagnostic 1).
    Timeout,
    /// The node went down, was drained or put in maint, or the agent stops (diagnostic 7).
    Admin,
    /// The node is up and ready again.
    Enable,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Remote => "remote",
            Cause::NeighborDown => "neighbor_down",
            Cause::Timeout => "timeout",
            Cause::Admin => "admin_down",
            Cause::Enable => "enable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub cause: Cause,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub state: State,
    pub remote_state: State,
    pub local_disc: u32,
    pub remote_disc: u32,
    pub diag: Diag,
    /// Configured intervals and multiplier.
    desired_min_tx: Duration,
    required_min_rx: Duration,
    detect_mult: u8,
    /// What the packets advertise now (6.8.3: one second while not Up).
    adv_tx: Duration,
    adv_rx: Duration,
    /// What the timers use: they change only once a Poll Sequence ends where 6.8.3 says so.
    tx_in_use: Duration,
    rx_in_use: Duration,
    remote_min_rx: Duration,
    remote_min_tx: Duration,
    remote_detect_mult: u8,
    /// A Poll Sequence is running: every packet carries P until a packet with F arrives.
    polling: bool,
    /// A received Poll is answered by the next packet, sent at once.
    pub final_due: bool,
    next_tx: Instant,
    /// When the last packet went out (periodic or at once), for [`Session::may_send_early`].
    last_tx: Option<Instant>,
    detect_at: Option<Instant>,
}

fn us(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

impl Session {
    pub fn new(
        local_disc: u32,
        min_tx: Duration,
        min_rx: Duration,
        mult: u8,
        now: Instant,
    ) -> Session {
        Session {
            state: State::Down,
            remote_state: State::Down,
            local_disc,
            remote_disc: 0,
            diag: Diag::None,
            desired_min_tx: min_tx,
            required_min_rx: min_rx,
            detect_mult: mult,
            adv_tx: SLOW_TX.max(min_tx),
            adv_rx: min_rx,
            tx_in_use: SLOW_TX.max(min_tx),
            rx_in_use: min_rx,
            remote_min_rx: REMOTE_MIN_RX_INIT,
            remote_min_tx: Duration::ZERO,
            remote_detect_mult: 0,
            polling: false,
            final_due: false,
            next_tx: now,
            last_tx: None,
            detect_at: None,
        }
    }

    /// The packet to send now. Clears the pending Final.
    pub fn packet(&mut self) -> Packet {
        let final_ = std::mem::take(&mut self.final_due);
        Packet {
            diag: self.diag,
            // AdminDown goes on the wire as Down (diagnostic 7 stays): a receiver must not
            // treat a neighbour's AdminDown as a failure (RFC 5882 section 3.2), and
            // keepalived's BFD_CHECK indeed ignores it, while here it means "take this node
            // out". Locally the session is AdminDown: it ignores the remote and does not
            // come up again until the node is up and ready.
            state: if self.state == State::AdminDown {
                State::Down
            } else {
                self.state
            },
            // 6.8.7: P and F are never set together; a Final answer goes without P.
            poll: self.polling && !final_,
            final_,
            demand: false,
            detect_mult: self.detect_mult,
            my_disc: self.local_disc,
            your_disc: self.remote_disc,
            desired_min_tx: us(self.adv_tx),
            required_min_rx: us(self.adv_rx),
            required_min_echo_rx: 0,
        }
    }

    /// The negotiated transmit interval: the slower of ours and what the remote can take.
    pub fn tx_interval(&self) -> Duration {
        self.tx_in_use.max(self.remote_min_rx)
    }

    /// The detection time in asynchronous mode (6.8.4): the remote's multiplier times the
    /// slower of our receive interval and its transmit interval, capped at
    /// [`Session::detect_cap`].
    pub fn detection_time(&self) -> Duration {
        (self.rx_in_use.max(self.remote_min_tx) * u32::from(self.remote_detect_mult))
            .min(self.detect_cap())
    }

    /// The longest Required Min RX taken from the remote: we never send less often than
    /// once per max(1 s, min_tx), the rate of a session that is not Up.
    pub fn max_remote_rx(&self) -> Duration {
        SLOW_TX.max(self.desired_min_tx)
    }

    /// The longest Desired Min TX taken from the remote: max(1 s, min_rx).
    pub fn max_remote_tx(&self) -> Duration {
        SLOW_TX.max(self.required_min_rx)
    }

    /// The longest detection time: max(1 s, min_rx) x max(multiplier, 3), whatever
    /// multiplier and intervals the remote sends.
    pub fn detect_cap(&self) -> Duration {
        self.max_remote_tx() * u32::from(self.detect_mult).max(MIN_DETECT_CAP_MULT)
    }

    /// The remote asks for no periodic packets (Required Min RX zero).
    pub fn remote_wants_silence(&self) -> bool {
        self.remote_min_rx == Duration::ZERO
    }

    /// When the next periodic packet is due; None while the remote asks for none (6.8.7).
    pub fn next_tx(&self) -> Option<Instant> {
        (self.remote_min_rx != Duration::ZERO).then_some(self.next_tx)
    }

    pub fn detect_at(&self) -> Option<Instant> {
        self.detect_at
    }

    /// Schedules the next periodic packet after one sent at `now`: 75-100% of the interval,
    /// 75-90% with a multiplier of 1 (6.8.7). `r` is a uniform random number in [0, 1).
    pub fn sent(&mut self, now: Instant, r: f64) {
        let top = if self.detect_mult == 1 { 0.90 } else { 1.0 };
        let f = JITTER_FLOOR + (top - JITTER_FLOOR) * r.clamp(0.0, 1.0);
        self.next_tx = now + self.tx_interval().mul_f64(f);
        self.last_tx = Some(now);
    }

    /// Whether a periodic packet sent at `now`, before its scheduled time, still keeps
    /// 6.8.7's spacing: at least 75 % of the interval after the previous packet. The
    /// speaker sends such a packet along with another session's due one, so that its
    /// sessions share one wakeup instead of each waking the thread on its own; the
    /// intervals stay within the 75-100 % (75-90 %) that 6.8.7 asks for.
    pub fn may_send_early(&self, now: Instant) -> bool {
        self.next_tx().is_some()
            && self
                .last_tx
                .is_none_or(|t| now >= t + self.tx_interval().mul_f64(JITTER_FLOOR))
    }

    fn set_state(&mut self, to: State, cause: Cause, out: &mut Option<Transition>) {
        if to == self.state {
            return;
        }
        let from = self.state;
        self.state = to;
        // 6.8.3: one second at least while not Up; the configured rate once Up, announced
        // through a Poll Sequence.
        let want = if to == State::Up {
            self.desired_min_tx
        } else {
            SLOW_TX.max(self.desired_min_tx)
        };
        // Entering Up announces the fast rate with a Poll Sequence; leaving Up needs none
        // (the remote is not relying on our rate any more).
        self.change_tx(want, to == State::Up);
        if to == State::Up {
            self.diag = Diag::None;
        } else {
            self.polling = false;
        }
        *out = Some(Transition { from, to, cause });
    }

    /// A new advertised transmit interval. While Up (or entering/leaving Up) it goes
    /// through a Poll Sequence; a longer interval is used only once the sequence ends.
    fn change_tx(&mut self, want: Duration, poll: bool) {
        if want == self.adv_tx {
            return;
        }
        let longer = want > self.adv_tx;
        self.adv_tx = want;
        if !poll {
            self.tx_in_use = want;
            return;
        }
        self.polling = true;
        if !longer {
            self.tx_in_use = want;
        }
    }

    /// New configured intervals and multiplier (a reload): 6.8.3 through a Poll Sequence.
    pub fn reconfigure(&mut self, min_tx: Duration, min_rx: Duration, mult: u8) {
        self.desired_min_tx = min_tx;
        self.detect_mult = mult;
        let want = if self.state == State::Up {
            min_tx
        } else {
            SLOW_TX.max(min_tx)
        };
        let up = self.state == State::Up;
        self.change_tx(want, up);
        if min_rx != self.required_min_rx {
            self.required_min_rx = min_rx;
            self.adv_rx = min_rx;
            // A shorter receive interval shortens the detection time only after the
            // sequence; a longer one applies at once.
            if !up || min_rx > self.rx_in_use {
                self.rx_in_use = min_rx;
            }
            if up {
                self.polling = true;
            }
        }
    }

    /// Administrative control (6.8.16): AdminDown with diagnostic 7, or back to Down.
    /// The caller sends a packet at once after a change.
    pub fn set_admin_down(&mut self, down: bool) -> Option<Transition> {
        let mut t = None;
        if down && self.state != State::AdminDown {
            self.diag = Diag::AdminDown;
            self.set_state(State::AdminDown, Cause::Admin, &mut t);
            self.detect_at = None;
        } else if !down && self.state == State::AdminDown {
            // A reset: what the remote last asked for is forgotten until it speaks again.
            self.remote_min_rx = REMOTE_MIN_RX_INIT;
            self.set_state(State::Down, Cause::Enable, &mut t);
        }
        t
    }

    /// Detection time check (6.8.4): in Init or Up, silence for a detection time takes the
    /// session Down with diagnostic 1 and forgets the remote discriminator.
    pub fn expire(&mut self, now: Instant) -> Option<Transition> {
        let at = self.detect_at?;
        if now < at {
            return None;
        }
        self.detect_at = None;
        self.remote_disc = 0;
        // The remote is gone: its wish for no periodic packets (or for a slow rate) goes
        // with it, so this side announces itself again at the Down rate.
        self.remote_min_rx = REMOTE_MIN_RX_INIT;
        let mut t = None;
        if matches!(self.state, State::Init | State::Up) {
            self.diag = Diag::TimeExpired;
            self.polling = false;
            self.set_state(State::Down, Cause::Timeout, &mut t);
        }
        t
    }

    /// Reception of a packet that passed [`Packet::decode`] and the session lookup
    /// (6.8.6 from "Set bfd.RemoteDiscr" on). The remote's intervals are clamped to
    /// [`Session::max_remote_rx`] and [`Session::max_remote_tx`]; shorter ones than ours
    /// change nothing, since the slower side of each pair wins.
    pub fn receive(&mut self, p: &Packet, now: Instant) -> Option<Transition> {
        self.remote_disc = p.my_disc;
        self.remote_state = p.state;
        let was_silent = self.remote_wants_silence();
        self.remote_min_rx =
            Duration::from_micros(u64::from(p.required_min_rx)).min(self.max_remote_rx());
        self.remote_min_tx =
            Duration::from_micros(u64::from(p.desired_min_tx)).min(self.max_remote_tx());
        self.remote_detect_mult = p.detect_mult;
        if was_silent && !self.remote_wants_silence() {
            // Periodic packets resume now, not at a time scheduled before the silence.
            self.next_tx = now;
        }
        if p.final_ && self.polling {
            self.polling = false;
            self.tx_in_use = self.adv_tx;
            self.rx_in_use = self.adv_rx;
        }
        if p.poll {
            self.final_due = true;
        }
        // A packet counts for the detection time even when the session is AdminDown.
        self.detect_at = Some(now + self.detection_time());
        // A transmit interval shorter than the one scheduled takes effect now.
        let soonest = now + self.tx_interval();
        if self.next_tx > soonest {
            self.next_tx = soonest;
        }
        let mut t = None;
        if self.state == State::AdminDown {
            return None;
        }
        if p.state == State::AdminDown {
            if self.state != State::Down {
                self.diag = Diag::NeighborDown;
                self.polling = false;
                self.set_state(State::Down, Cause::NeighborDown, &mut t);
            }
            return t;
        }
        match (self.state, p.state) {
            (State::Down, State::Down) => self.set_state(State::Init, Cause::Remote, &mut t),
            (State::Down, State::Init) => self.set_state(State::Up, Cause::Remote, &mut t),
            (State::Init, State::Init | State::Up) => {
                self.set_state(State::Up, Cause::Remote, &mut t)
            }
            (State::Up, State::Down) => {
                self.diag = Diag::NeighborDown;
                self.polling = false;
                self.set_state(State::Down, Cause::NeighborDown, &mut t)
            }
            _ => {}
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS50: Duration = Duration::from_millis(50);

    fn remote(state: State, your: u32) -> Packet {
        Packet {
            diag: Diag::None,
            state,
            poll: false,
            final_: false,
            demand: false,
            detect_mult: 3,
            my_disc: 99,
            your_disc: your,
            desired_min_tx: 50_000,
            required_min_rx: 50_000,
            required_min_echo_rx: 0,
        }
    }

    fn session(now: Instant) -> Session {
        Session::new(7, MS50, MS50, 3, now)
    }

    /// The table of 6.8.6 for every local state and received state.
    #[test]
    fn state_table() {
        use State::*;
        let cases = [
            (Down, AdminDown, Down),
            (Down, Down, Init),
            (Down, Init, Up),
            (Down, Up, Down),
            (Init, AdminDown, Down),
            (Init, Down, Init),
            (Init, Init, Up),
            (Init, Up, Up),
            (Up, AdminDown, Down),
            (Up, Down, Down),
            (Up, Init, Up),
            (Up, Up, Up),
            (AdminDown, Down, AdminDown),
            (AdminDown, Up, AdminDown),
        ];
        let now = Instant::now();
        for (local, recv, want) in cases {
            let mut s = session(now);
            s.state = local;
            s.receive(&remote(recv, 7), now);
            assert_eq!(s.state, want, "local {local:?} received {recv:?}");
        }
    }

    #[test]
    fn three_way_handshake_then_poll_to_fast_rate() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let p = s.packet();
        assert_eq!((p.state, p.your_disc, p.my_disc), (State::Down, 0, 7));
        assert_eq!(p.desired_min_tx, 1_000_000, "one second while not Up");
        let t = s.receive(&remote(State::Down, 0), t0).unwrap();
        assert_eq!(
            (t.from, t.to, t.cause),
            (State::Down, State::Init, Cause::Remote)
        );
        assert_eq!(s.remote_disc, 99);
        let t = s.receive(&remote(State::Up, 7), t0).unwrap();
        assert_eq!(t.to, State::Up);
        // Up: the fast rate is announced with P and used at once (it is shorter).
        let p = s.packet();
        assert!(p.poll && !p.final_);
        assert_eq!(p.desired_min_tx, 50_000);
        assert_eq!(s.tx_interval(), MS50);
        let mut f = remote(State::Up, 7);
        f.final_ = true;
        s.receive(&f, t0);
        assert!(!s.packet().poll, "Final ends the Poll Sequence");
    }

    #[test]
    fn poll_is_answered_with_final_and_never_both() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.receive(&remote(State::Init, 0), t0);
        assert_eq!(s.state, State::Up);
        let mut p = remote(State::Up, 7);
        p.poll = true;
        s.receive(&p, t0);
        assert!(s.final_due);
        let out = s.packet();
        assert!(out.final_ && !out.poll);
        let out = s.packet();
        assert!(!out.final_ && out.poll, "own sequence continues");
    }

    #[test]
    fn detection_time_and_timeout() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.receive(&remote(State::Init, 0), t0);
        let mut slow = remote(State::Up, 7);
        slow.desired_min_tx = 100_000;
        slow.detect_mult = 4;
        s.receive(&slow, t0);
        assert_eq!(s.detection_time(), Duration::from_millis(400));
        assert!(s.expire(t0 + Duration::from_millis(399)).is_none());
        let t = s.expire(t0 + Duration::from_millis(400)).unwrap();
        assert_eq!((t.to, t.cause), (State::Down, Cause::Timeout));
        assert_eq!(s.diag, Diag::TimeExpired);
        assert_eq!(s.remote_disc, 0);
        assert_eq!(s.packet().desired_min_tx, 1_000_000);
    }

    #[test]
    fn admin_down_is_sticky_until_enabled() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.receive(&remote(State::Init, 0), t0);
        let t = s.set_admin_down(true).unwrap();
        assert_eq!(
            (t.from, t.to, t.cause),
            (State::Up, State::AdminDown, Cause::Admin)
        );
        let p = s.packet();
        assert_eq!(
            (p.state, p.diag),
            (State::Down, Diag::AdminDown),
            "Down on the wire"
        );
        assert!(s.set_admin_down(true).is_none());
        s.receive(&remote(State::Up, 7), t0);
        assert_eq!(s.state, State::AdminDown);
        assert!(s.expire(t0 + Duration::from_secs(10)).is_none());
        let t = s.set_admin_down(false).unwrap();
        assert_eq!((t.to, t.cause), (State::Down, Cause::Enable));
        s.receive(&remote(State::Down, 7), t0);
        s.receive(&remote(State::Up, 7), t0);
        assert_eq!(s.state, State::Up);
        assert_eq!(s.diag, Diag::None);
    }

    #[test]
    fn jitter_bounds() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.receive(&remote(State::Init, 0), t0);
        for (r, lo, hi) in [(0.0, 37_500, 37_500), (0.999, 49_900, 50_000)] {
            s.sent(t0, r);
            let d = s.next_tx().unwrap() - t0;
            assert!(
                d >= Duration::from_micros(lo) && d <= Duration::from_micros(hi),
                "{d:?}"
            );
        }
        let mut one = Session::new(7, MS50, MS50, 1, t0);
        one.receive(&remote(State::Init, 0), t0);
        one.sent(t0, 0.999);
        assert!(one.next_tx().unwrap() - t0 <= Duration::from_millis(45));
    }

    /// A packet sent early along with another session's keeps 6.8.7's spacing: never
    /// before 75 % of the interval, and never while the remote wants no periodic packets.
    #[test]
    fn early_send_keeps_the_spacing() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.receive(&remote(State::Init, 0), t0);
        assert!(s.may_send_early(t0), "nothing sent yet");
        s.sent(t0, 0.999);
        assert!(!s.may_send_early(t0 + Duration::from_micros(37_499)));
        assert!(s.may_send_early(t0 + Duration::from_micros(37_500)));
        let mut silent = remote(State::Init, 0);
        silent.required_min_rx = 0;
        s.receive(&silent, t0);
        assert!(!s.may_send_early(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn slower_remote_rx_and_zero_rx() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let mut p = remote(State::Init, 0);
        p.required_min_rx = 300_000;
        s.receive(&p, t0);
        assert_eq!(s.tx_interval(), Duration::from_millis(300));
        p.required_min_rx = 0;
        s.receive(&p, t0);
        assert!(s.next_tx().is_none(), "remote asks for no periodic packets");
    }

    #[test]
    fn longer_interval_waits_for_final() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.receive(&remote(State::Init, 0), t0);
        let mut f = remote(State::Up, 7);
        f.final_ = true;
        s.receive(&f, t0);
        s.reconfigure(Duration::from_millis(200), Duration::from_millis(20), 3);
        assert_eq!(s.tx_interval(), MS50, "longer tx only after the sequence");
        assert_eq!(s.rx_in_use, MS50, "shorter rx only after the sequence");
        let p = s.packet();
        assert!(p.poll);
        assert_eq!((p.desired_min_tx, p.required_min_rx), (200_000, 20_000));
        s.receive(&f, t0);
        assert_eq!(s.tx_interval(), Duration::from_millis(200));
        assert_eq!(s.rx_in_use, Duration::from_millis(20));
    }

    /// A remote asking for Desired Min TX / Required Min RX of u32::MAX microseconds (71
    /// minutes) and multiplier 255 neither slows this side below one packet a second nor
    /// stretches the detection time past 3 s (defaults: 50 ms x 3).
    #[test]
    fn huge_remote_timers_are_clamped() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let mut p = remote(State::Init, 0);
        p.desired_min_tx = u32::MAX;
        p.required_min_rx = u32::MAX;
        p.detect_mult = 255;
        s.receive(&p, t0);
        assert_eq!(s.state, State::Up);
        assert_eq!(s.tx_interval(), SLOW_TX);
        assert_eq!(s.detection_time(), Duration::from_secs(3));
        s.sent(t0, 0.999);
        assert!(s.next_tx().unwrap() - t0 <= SLOW_TX);
        let t = s.expire(t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(t.cause, Cause::Timeout);
        // Configured intervals above one second raise the bounds with them.
        let mut slow = Session::new(7, Duration::from_secs(2), Duration::from_secs(4), 5, t0);
        slow.receive(&p, t0);
        assert_eq!(slow.tx_interval(), Duration::from_secs(2));
        assert_eq!(slow.detection_time(), Duration::from_secs(20));
    }

    /// Required Min RX zero stops periodic packets while the remote keeps saying so; asking
    /// again resumes them at once, and so does a timeout or an administrative reset.
    #[test]
    fn zero_remote_rx_is_not_for_good() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let mut p = remote(State::Init, 0);
        p.required_min_rx = 0;
        s.receive(&p, t0);
        assert!(s.remote_wants_silence());
        assert!(s.next_tx().is_none());
        let t1 = t0 + Duration::from_secs(5);
        p.state = State::Up;
        p.your_disc = 7;
        p.required_min_rx = 50_000;
        s.receive(&p, t1);
        assert_eq!(s.next_tx(), Some(t1), "resumes at once");
        // Silence again, then the remote goes quiet: the timeout forgets the wish.
        p.required_min_rx = 0;
        s.receive(&p, t1);
        assert!(s.next_tx().is_none());
        let t = s.expire(t1 + s.detection_time()).unwrap();
        assert_eq!(t.to, State::Down);
        assert!(
            s.next_tx().is_some(),
            "a Down session announces itself again"
        );
        // The same through AdminDown and back.
        s.receive(&p, t1);
        assert!(s.next_tx().is_none());
        s.set_admin_down(true);
        s.set_admin_down(false);
        assert!(s.next_tx().is_some());
    }
}
