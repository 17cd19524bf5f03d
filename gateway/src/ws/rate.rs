//! Per-connection flood control: a token bucket ([`Gcra`]: 32 bytes, where
//! a `governor` limiter was 72, held by every idle connection) over client
//! frames. A refused frame is answered with `rate_limited`; a client that
//! keeps sending through `msg_burst` consecutive refusals is disconnected
//! with 1008 (policy violation).

use crate::limits::gcra::Gcra;
use tokio::time::Instant;

pub struct FrameLimiter {
    bucket: Option<Gcra>,
    /// Consecutive refused frames.
    strikes: u32,
    max_strikes: u32,
}

/// What to do with the frame that just arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Refuse,
    Disconnect,
}

impl FrameLimiter {
    /// `rate` frames per second with bursts of `burst`; `rate == 0` allows everything.
    pub fn new(rate: u32, burst: u32) -> Self {
        FrameLimiter {
            bucket: Gcra::new(rate, burst),
            strikes: 0,
            max_strikes: burst.max(1),
        }
    }

    pub fn check(&mut self) -> Verdict {
        let Some(bucket) = &mut self.bucket else {
            return Verdict::Allow;
        };
        if bucket.try_charge(1, Instant::now()).is_ok() {
            self.strikes = 0;
            return Verdict::Allow;
        }
        self.strikes += 1;
        if self.strikes > self.max_strikes {
            Verdict::Disconnect
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusals_then_disconnect() {
        let mut l = FrameLimiter::new(1, 3);
        for _ in 0..3 {
            assert_eq!(l.check(), Verdict::Allow);
        }
        for _ in 0..3 {
            assert_eq!(l.check(), Verdict::Refuse);
        }
        assert_eq!(l.check(), Verdict::Disconnect);
    }

    /// In paused time: `rate` frames a second once the burst is spent, and
    /// an allowed frame clears the strikes.
    #[tokio::test(start_paused = true)]
    async fn the_bucket_refills_at_the_rate() {
        let mut l = FrameLimiter::new(10, 2);
        assert_eq!(l.check(), Verdict::Allow);
        assert_eq!(l.check(), Verdict::Allow);
        assert_eq!(l.check(), Verdict::Refuse);
        tokio::time::advance(std::time::Duration::from_millis(99)).await;
        assert_eq!(l.check(), Verdict::Refuse, "not a whole unit yet");
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        assert_eq!(l.check(), Verdict::Allow, "one unit (100 ms) later");
        assert_eq!(l.check(), Verdict::Refuse);
        assert_eq!(l.check(), Verdict::Refuse);
        assert_eq!(
            l.check(),
            Verdict::Disconnect,
            "more than burst strikes in a row"
        );
    }

    #[test]
    fn zero_rate_is_off() {
        let mut l = FrameLimiter::new(0, 1);
        for _ in 0..10_000 {
            assert_eq!(l.check(), Verdict::Allow);
        }
    }
}
