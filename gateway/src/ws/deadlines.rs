//! A connection's three deadlines, served by one timer in its writer: the
//! next ping, the client's silence (nothing heard for `client_timeout`) and,
//! once the node drains, this connection's turn to close.
//!
//! One timer for all three because every idle connection holds its timers
//! for its whole life (a tokio `Sleep` is 112 bytes): the session's reader
//! holds none, and only records when it last heard the client
//! ([`ConnHandle::heard`](crate::conn::ConnHandle::heard)). The timer is not
//! moved by every frame heard: when it fires, the silence is measured again
//! and the timer set for what is due next.

use std::time::Duration;
use tokio::time::Instant;

pub struct Deadlines {
    ping_every: Duration,
    client_timeout: Duration,
    drain_window: Duration,
    next_ping: Instant,
    /// Set when the node starts draining.
    drain_at: Option<Instant>,
}

/// What is due when the timer fires, the most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The node is draining and this connection's turn has come (1012).
    Drain,
    /// Nothing heard from the client for `client_timeout` (4000).
    Silence,
    /// Time to ping; the next ping is one period later.
    Ping,
    /// Nothing yet (the client spoke since the timer was set).
    Nothing,
}

impl Deadlines {
    /// Starting at `now`: the first ping one period later.
    pub fn new(
        now: Instant,
        ping_every: Duration,
        client_timeout: Duration,
        drain_window: Duration,
    ) -> Self {
        Deadlines {
            ping_every,
            client_timeout,
            drain_window,
            next_ping: now + ping_every,
            drain_at: None,
        }
    }

    /// The node started draining: this connection closes at a random moment
    /// within the drain window, so that thousands of clients told to
    /// reconnect do not all come back in the same millisecond.
    pub fn drain(&mut self, now: Instant) {
        let ms = self.drain_window.as_millis() as u64;
        let delay = if ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::random_range(0..ms))
        };
        self.drain_at.get_or_insert(now + delay);
    }

    pub fn draining(&self) -> bool {
        self.drain_at.is_some()
    }

    /// When the timer must fire next, the client last heard at `heard`.
    pub fn next(&self, heard: Instant) -> Instant {
        let soonest = self.next_ping.min(heard + self.client_timeout);
        self.drain_at.map_or(soonest, |at| at.min(soonest))
    }

    /// What is due at `now`; a ping moves the next one a period on (from
    /// where it was due, so that frames written in between do not move it).
    pub fn due(&mut self, now: Instant, heard: Instant) -> Due {
        if self.drain_at.is_some_and(|at| at <= now) {
            Due::Drain
        } else if heard + self.client_timeout <= now {
            Due::Silence
        } else if self.next_ping <= now {
            self.next_ping += self.ping_every;
            if self.next_ping <= now {
                // Far behind (a long write): no burst of pings to catch up.
                self.next_ping = now + self.ping_every;
            }
            Due::Ping
        } else {
            Due::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn deadlines(start: Instant) -> Deadlines {
        // Ping every 10 s, silence after 25 s, drain within 5 s.
        Deadlines::new(start, 10 * S, 25 * S, 5 * S)
    }

    #[test]
    fn pings_keep_their_period_and_silence_is_measured_from_the_last_frame_heard() {
        let t0 = Instant::now();
        let mut d = deadlines(t0);
        assert_eq!(d.next(t0), t0 + 10 * S, "the first ping");
        assert_eq!(d.due(t0 + 10 * S, t0), Due::Ping);
        assert_eq!(d.next(t0), t0 + 20 * S, "one period on");
        // Fired a little late: the period still counts from 20 s.
        assert_eq!(d.due(t0 + 21 * S, t0), Due::Ping);
        assert_eq!(
            d.next(t0),
            t0 + 25 * S,
            "silence comes before the ping at 30 s"
        );
        // Heard at 24 s: not silent at 25 s, and the next deadline is the ping.
        let heard = t0 + 24 * S;
        assert_eq!(d.due(t0 + 25 * S, heard), Due::Nothing);
        assert_eq!(d.next(heard), t0 + 30 * S);
        assert_eq!(d.due(t0 + 30 * S, heard), Due::Ping);
        assert_eq!(d.next(heard), t0 + 40 * S);
        assert_eq!(d.due(t0 + 49 * S, heard), Due::Silence, "25 s after 24 s");
    }

    #[test]
    fn far_behind_pings_once_and_starts_a_new_period() {
        let t0 = Instant::now();
        let mut d = deadlines(t0);
        assert_eq!(d.due(t0 + 35 * S, t0 + 34 * S), Due::Ping);
        assert_eq!(d.next(t0 + 34 * S), t0 + 45 * S);
    }

    #[test]
    fn a_drain_picks_one_moment_in_its_window_and_comes_first() {
        let t0 = Instant::now();
        let mut d = deadlines(t0);
        assert!(!d.draining());
        d.drain(t0);
        let at = d.next(t0);
        assert!(d.draining());
        assert!(at < t0 + 5 * S, "within the window: {:?}", at - t0);
        d.drain(t0 + S);
        assert_eq!(d.next(t0), at, "a second drain does not move it");
        // Silent and due a ping as well: the drain wins.
        assert_eq!(d.due(t0 + 30 * S, t0), Due::Drain);
    }

    #[test]
    fn a_zero_drain_window_closes_at_once() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, 10 * S, 25 * S, Duration::ZERO);
        d.drain(t0);
        assert_eq!(d.next(t0), t0);
        assert_eq!(d.due(t0, t0), Due::Drain);
    }
}
