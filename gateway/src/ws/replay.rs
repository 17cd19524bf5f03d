//! How much history one connection may ask to have replayed. A resume
//! (`join_room` with `since_seq`) costs one unit per message it would replay
//! (at most the recovery window), from a budget of twice the window that
//! refills by one window every 10 s. Without it a client could send the same
//! small `join_room` over and over and have the node read and send it a
//! thousand messages each time. Beyond the budget the `join_room` is refused
//! with `rate_limited` (nothing is done; the client retries later): nothing
//! is dropped silently. (A resume at connect is bounded by the per-address
//! connect rate instead.)

use crate::limits::{Limit, gcra::Gcra};
use std::time::Duration;
use tokio::time::Instant;

/// Boxed and made at the first resume: every connection carries one, few
/// ever use it.
pub struct ReplayBudget {
    budget: Option<Box<Gcra>>,
    window: u32,
}

impl ReplayBudget {
    /// For a recovery window of `window` messages.
    pub fn new(window: u64) -> Self {
        ReplayBudget {
            budget: None,
            window: window.clamp(1, u32::MAX as u64 / 2) as u32,
        }
    }

    /// Pay for replaying `messages` (capped at the window): refused, and
    /// counted, with how long until the budget holds them.
    pub fn take(&mut self, messages: u64) -> Result<(), Duration> {
        let units = messages.min(u64::from(self.window)) as u32;
        if units == 0 {
            return Ok(());
        }
        let window = self.window;
        let budget = self.budget.get_or_insert_with(|| {
            Box::new(Gcra::new((window / 10).max(1), 2 * window).expect("a rate of at least 1"))
        });
        budget
            .try_charge(units, Instant::now())
            .inspect_err(|_| Limit::Replay.hit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn two_windows_at_once_then_one_per_ten_seconds() {
        let mut b = ReplayBudget::new(1000);
        assert!(b.take(5000).is_ok(), "capped at the window");
        assert!(b.take(1000).is_ok());
        let wait = b.take(1000).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(b.take(0).is_ok(), "a plain join costs nothing");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.take(1000).is_ok());
    }
}
