//! Per-connection flood control: a token bucket (`governor`) over client
//! frames. A refused frame is answered with `rate_limited`; a client that
//! keeps sending through `msg_burst` consecutive refusals is disconnected
//! with 1008 (policy violation).

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

pub struct FrameLimiter {
    bucket: Option<DefaultDirectRateLimiter>,
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
        let bucket = NonZeroU32::new(rate).map(|rate| {
            let burst = NonZeroU32::new(burst.max(1)).expect("max(1) is non-zero");
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
        });
        FrameLimiter {
            bucket,
            strikes: 0,
            max_strikes: burst.max(1),
        }
    }

    pub fn check(&mut self) -> Verdict {
        let Some(bucket) = &self.bucket else {
            return Verdict::Allow;
        };
        if bucket.check().is_ok() {
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

    #[test]
    fn zero_rate_is_off() {
        let mut l = FrameLimiter::new(0, 1);
        for _ in 0..10_000 {
            assert_eq!(l.check(), Verdict::Allow);
        }
    }
}
