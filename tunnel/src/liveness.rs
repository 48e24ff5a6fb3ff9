//! Whether a tunnel's peer answers (up, connecting or down), and when to run WireGuard's
//! timers and offer a handshake to find out. No clock and no I/O: the caller passes `now` (on
//! its own clock) and what the engine counted, and does what it is told.

use std::time::Duration;

/// WireGuard's timers want a tick about this often.
pub const TICK: Duration = Duration::from_millis(250);
/// Sent inner packets unanswered this long mean the peer is gone (WireGuard's peer answers
/// any data within its 10 s keepalive timeout).
pub const DOWN_AFTER: Duration = Duration::from_secs(10);
/// Sent packets unanswered this long (a live peer's TCP answers any segment within a round
/// trip and a delayed ACK) suggest the peer lost our session, say it restarted: a new
/// handshake is offered then, rather than after boringtun's 15 s. Harmless if the peer was
/// merely slow: it is a rekey.
pub const PROBE_AFTER: Duration = Duration::from_secs(2);
/// Handshakes offered for that reason, or while down, at most this often.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A session keyed longer ago than this is void (WireGuard's reject-after-time).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(180);

/// Where a tunnel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelState {
    /// No session yet (or it expired), and nothing has gone unanswered for long.
    Connecting,
    /// A session, and the peer answers.
    Up,
    /// What we sent went unanswered for [`DOWN_AFTER`]; handshakes are offered every
    /// [`PROBE_EVERY`] until the peer answers.
    Down,
}

impl TunnelState {
    /// The label in `/status` and `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            TunnelState::Connecting => "connecting",
            TunnelState::Up => "up",
            TunnelState::Down => "down",
        }
    }
}

/// What the engine showed at one moment: the counters are running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// Inner packets encrypted and sent so far.
    pub tx_packets: u64,
    /// Datagrams so far that proved to come from the peer.
    pub rx_authenticated: u64,
    /// Time since the current session was keyed, if there is one.
    pub session_age: Option<Duration>,
}

/// What a due tick asks of the caller: run WireGuard's timers, and perhaps more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Offer the peer a new handshake (it seems gone, or it is down).
    pub offer_handshake: bool,
}

/// The up/down/probe state machine of one tunnel.
#[derive(Debug, Clone)]
pub struct Liveness {
    state: TunnelState,
    /// The counters as last observed, to tell what changed since.
    seen: Signals,
    /// When a sent packet first went unanswered (cleared by anything from the peer).
    awaiting_since: Option<Duration>,
    last_offer: Duration,
    next_tick: Duration,
    last_received: Option<Duration>,
}

impl Liveness {
    /// A tunnel starting at `now`: connecting, its first tick one [`TICK`] away.
    pub fn new(now: Duration) -> Liveness {
        Liveness {
            state: TunnelState::Connecting,
            seen: Signals::default(),
            awaiting_since: None,
            last_offer: now,
            next_tick: now + TICK,
            last_received: None,
        }
    }

    /// The state as of the last [`Liveness::observe`].
    pub fn state(&self) -> TunnelState {
        self.state
    }

    /// When the peer's last authenticated datagram was observed, if ever.
    pub fn last_received(&self) -> Option<Duration> {
        self.last_received
    }

    /// When the next tick is due.
    pub fn next_tick(&self) -> Duration {
        self.next_tick
    }

    /// The timer: `None` before [`Liveness::next_tick`], else what to do now (the next tick
    /// is then one [`TICK`] after `now`). `endpoint_known`: whether a handshake could be sent
    /// anywhere (a tunnel waiting for its peer offers none).
    pub fn tick(&mut self, now: Duration, endpoint_known: bool) -> Option<Tick> {
        if now < self.next_tick {
            return None;
        }
        self.next_tick = now + TICK;
        let unanswered = self
            .awaiting_since
            .is_some_and(|since| now.saturating_sub(since) >= PROBE_AFTER);
        let offer_handshake = endpoint_known
            && (unanswered || self.state == TunnelState::Down)
            && now.saturating_sub(self.last_offer) >= PROBE_EVERY;
        if offer_handshake {
            self.last_offer = now;
        }
        Some(Tick { offer_handshake })
    }

    /// Takes in what the engine counted by `now`; returns the new state if it changed.
    pub fn observe(&mut self, now: Duration, signals: Signals) -> Option<TunnelState> {
        if signals.rx_authenticated != self.seen.rx_authenticated {
            self.awaiting_since = None;
            self.last_received = Some(now);
        }
        if signals.tx_packets != self.seen.tx_packets {
            self.awaiting_since.get_or_insert(now);
        }
        self.seen = signals;
        let silent = self
            .awaiting_since
            .is_some_and(|since| now.saturating_sub(since) >= DOWN_AFTER);
        let session = signals
            .session_age
            .is_some_and(|age| age < SESSION_LIFETIME);
        let state = if silent {
            TunnelState::Down
        } else if session {
            TunnelState::Up
        } else {
            TunnelState::Connecting
        };
        (state != self.state).then(|| {
            self.state = state;
            state
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A tunnel on a virtual clock, ticked and observed the way the driver does it, with a
    /// peer whose answers the test decides.
    struct Clock {
        live: Liveness,
        now: Duration,
        signals: Signals,
        endpoint_known: bool,
        /// When each handshake was offered.
        offers: Vec<Duration>,
        /// Each state change and when.
        changes: Vec<(Duration, TunnelState)>,
    }

    impl Clock {
        fn new(endpoint_known: bool) -> Clock {
            Clock {
                live: Liveness::new(Duration::ZERO),
                now: Duration::ZERO,
                signals: Signals::default(),
                endpoint_known,
                offers: Vec::new(),
                changes: Vec::new(),
            }
        }

        /// Runs for `span` in steps of 10 ms; `each` may change the signals at every step
        /// (it is given the time since the run began).
        fn run(&mut self, span: Duration, mut each: impl FnMut(Duration, &mut Signals)) {
            let start = self.now;
            while self.now - start < span {
                self.now += 10 * MS;
                each(self.now - start, &mut self.signals);
                if let Some(tick) = self.live.tick(self.now, self.endpoint_known) {
                    if tick.offer_handshake {
                        self.offers.push(self.now);
                    }
                }
                if let Some(state) = self.live.observe(self.now, self.signals) {
                    self.changes.push((self.now, state));
                }
            }
        }

        /// The peer completes a handshake now.
        fn handshake(&mut self) {
            self.signals.rx_authenticated += 1;
            self.signals.session_age = Some(Duration::ZERO);
            self.run(10 * MS, |_, _| {});
        }

        fn offers_after(&self, t: Duration) -> Vec<Duration> {
            self.offers.iter().copied().filter(|&o| o > t).collect()
        }
    }

    /// At every step a packet is sent and the peer answers it at once.
    fn answered(_: Duration, s: &mut Signals) {
        s.tx_packets += 1;
        s.rx_authenticated += 1;
    }

    /// At every step a packet is sent and nothing comes back.
    fn unanswered(_: Duration, s: &mut Signals) {
        s.tx_packets += 1;
    }

    #[test]
    fn ticks_come_every_250_ms_and_a_late_one_counts_from_when_it_ran() {
        let mut live = Liveness::new(Duration::from_secs(5));
        assert_eq!(live.next_tick(), Duration::from_secs(5) + TICK);
        assert_eq!(live.tick(Duration::from_secs(5) + TICK - MS, true), None);
        let at = Duration::from_secs(5) + TICK;
        assert!(live.tick(at, true).is_some());
        assert_eq!(live.next_tick(), at + TICK);
        assert_eq!(live.tick(at + MS, true), None, "not twice in one period");
        let late = at + 3 * TICK;
        assert!(live.tick(late, true).is_some(), "one tick, however late");
        assert_eq!(live.next_tick(), late + TICK);
    }

    #[test]
    fn waiting_for_the_peer_stays_connecting_and_offers_nothing() {
        let mut c = Clock::new(false);
        c.run(Duration::from_secs(60), |_, _| {});
        assert_eq!(c.live.state(), TunnelState::Connecting);
        assert!(c.changes.is_empty() && c.offers.is_empty());
        assert_eq!(c.live.last_received(), None);
        // (The engine sends nothing without an endpoint.) Were sends unanswered all the same,
        // no handshake is offered with nowhere to send it; the state follows the counters.
        c.run(Duration::from_secs(15), unanswered);
        assert!(c.offers.is_empty(), "{:?}", c.offers);
        assert_eq!(c.live.state(), TunnelState::Down);
    }

    #[test]
    fn the_peers_first_handshake_brings_the_tunnel_up() {
        let mut c = Clock::new(false);
        c.run(Duration::from_secs(3), |_, _| {});
        // The peer's handshake makes its endpoint known and keys a session.
        c.endpoint_known = true;
        c.handshake();
        assert_eq!(c.changes, [(c.now, TunnelState::Up)]);
        assert_eq!(c.live.last_received(), Some(c.now));
        // A session with nothing sent: no offers.
        c.run(Duration::from_secs(30), |_, _| {});
        assert_eq!(c.live.state(), TunnelState::Up);
        assert!(c.offers.is_empty(), "{:?}", c.offers);
    }

    #[test]
    fn an_answered_tunnel_stays_up_and_offers_no_handshake() {
        let mut c = Clock::new(true);
        c.handshake();
        c.run(Duration::from_secs(60), |elapsed, s| {
            answered(elapsed, s);
            s.session_age = Some(elapsed);
        });
        assert_eq!(c.changes.len(), 1, "{:?}", c.changes);
        assert_eq!(c.live.state(), TunnelState::Up);
        assert!(c.offers.is_empty(), "{:?}", c.offers);
        assert_eq!(c.live.last_received(), Some(c.now));
    }

    #[test]
    fn silence_brings_the_tunnel_down_after_the_threshold_not_before() {
        let mut c = Clock::new(true);
        c.handshake();
        let first_unanswered = c.now + 10 * MS;
        c.run(DOWN_AFTER, unanswered);
        assert_eq!(c.live.state(), TunnelState::Up, "not yet at {:?}", c.now);
        c.run(10 * MS, unanswered);
        assert_eq!(c.changes.last(), Some(&(c.now, TunnelState::Down)));
        assert_eq!(c.now - first_unanswered, DOWN_AFTER);
    }

    #[test]
    fn sends_unanswered_for_2_s_offer_a_handshake_while_still_up() {
        // The restarted peer: it drops our data (no session) and says nothing.
        let mut c = Clock::new(true);
        c.handshake();
        c.run(Duration::from_secs(20), answered);
        assert!(c.offers.is_empty());
        let quiet_from = c.now + 10 * MS;
        c.run(Duration::from_secs(5), unanswered);
        assert_eq!(c.live.state(), TunnelState::Up);
        let offers = c.offers_after(quiet_from);
        // The first at the first tick at least PROBE_AFTER into the silence, then every
        // PROBE_EVERY (rounded up to a tick).
        assert!(!offers.is_empty(), "no handshake offered");
        assert!(offers[0] - quiet_from >= PROBE_AFTER, "{offers:?}");
        assert!(offers[0] - quiet_from < PROBE_AFTER + TICK, "{offers:?}");
        for pair in offers.windows(2) {
            assert!(pair[1] - pair[0] >= PROBE_EVERY, "{offers:?}");
            assert!(pair[1] - pair[0] < PROBE_EVERY + TICK, "{offers:?}");
        }
        // The peer takes the handshake: answers again, no more offers.
        c.handshake();
        let answered_at = c.now;
        c.run(Duration::from_secs(10), answered);
        assert!(c.offers_after(answered_at).is_empty());
        assert_eq!(c.live.state(), TunnelState::Up);
    }

    #[test]
    fn a_down_tunnel_offers_a_handshake_every_2_s_and_recovers_when_answered() {
        let mut c = Clock::new(true);
        c.handshake();
        c.run(DOWN_AFTER + 10 * MS, unanswered);
        assert_eq!(c.live.state(), TunnelState::Down);
        // Down with nothing more sent (dials fail at once): offers carry on.
        let down_at = c.now;
        c.run(Duration::from_secs(20), |_, _| {});
        let offers = c.offers_after(down_at);
        assert!(offers.len() >= 8, "{offers:?}");
        for pair in offers.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= PROBE_EVERY && gap < PROBE_EVERY + TICK, "{offers:?}");
        }
        assert_eq!(c.live.state(), TunnelState::Down);
        // The peer answers an offer: up at once, offers stop.
        c.handshake();
        assert_eq!(c.changes.last(), Some(&(c.now, TunnelState::Up)));
        let up_at = c.now;
        c.run(Duration::from_secs(20), answered);
        assert!(c.offers_after(up_at).is_empty(), "{:?}", c.offers);
        assert_eq!(c.live.state(), TunnelState::Up);
    }

    #[test]
    fn an_expired_session_is_connecting_again() {
        let mut c = Clock::new(true);
        c.handshake();
        c.run(SESSION_LIFETIME + Duration::from_secs(1), |elapsed, s| {
            s.session_age = Some(elapsed);
        });
        assert_eq!(
            c.changes.iter().map(|&(_, s)| s).collect::<Vec<_>>(),
            [TunnelState::Up, TunnelState::Connecting]
        );
        let (at, _) = c.changes[1];
        assert_eq!(
            at - c.changes[0].0,
            SESSION_LIFETIME,
            "when the session reached its lifetime"
        );
    }
}
