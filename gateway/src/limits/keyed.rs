//! A rate per key (client address, user): `governor`'s keyed token bucket,
//! with the refusal counted and the wait until the next allowed request.

use super::Limit;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

pub struct KeyedRate<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    limit: Limit,
}

impl<K: Hash + Eq + Clone> KeyedRate<K> {
    /// `rate` per second with bursts of `burst_factor` times that; `None`
    /// (no limit) when `rate` is 0.
    pub fn new(rate: u32, burst_factor: u32, limit: Limit) -> Option<Self> {
        Self::with_burst(rate, rate.saturating_mul(burst_factor), limit)
    }

    /// `rate` per second with bursts of `burst`; `None` when `rate` is 0.
    pub fn with_burst(rate: u32, burst: u32, limit: Limit) -> Option<Self> {
        let rate = NonZeroU32::new(rate)?;
        let burst = NonZeroU32::new(burst.max(1)).expect("max(1) > 0");
        Some(KeyedRate {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            limit,
        })
    }

    /// Allowed, or refused (and counted) with how long until the next one is.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter.check_key(key).map_err(|not_until| {
            self.limit.hit();
            not_until.wait_time_from(DefaultClock::default().now())
        })
    }

    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A check that passes when the limit is off.
pub fn check<K: Hash + Eq + Clone>(limit: &Option<KeyedRate<K>>, key: &K) -> Result<(), Duration> {
    limit.as_ref().map_or(Ok(()), |l| l.check(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_key_then_refusals_with_a_wait() {
        let l = KeyedRate::new(1, 2, Limit::AuthRate).unwrap();
        assert!(l.check(&"a").is_ok());
        assert!(l.check(&"a").is_ok());
        let wait = l.check(&"a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(l.check(&"b").is_ok(), "another key has its own budget");
        assert!(
            KeyedRate::<u8>::new(0, 2, Limit::AuthRate).is_none(),
            "0: off"
        );
        assert!(check(&None::<KeyedRate<u8>>, &1).is_ok());
    }
}
