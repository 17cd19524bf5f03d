//! GCRA, the "virtual scheduling" form of a token bucket: one instant per
//! budget (when it would be full again), no timer, no task. Used for the
//! per-connection budgets, which every idle connection carries.

use std::time::Duration;
use tokio::time::Instant;

/// One rate with a burst: `rate` units per second, `burst` at once.
#[derive(Debug)]
pub struct Gcra {
    /// When the budget would be back to full, had nothing more arrived.
    tat: Instant,
    /// Time one unit is worth.
    unit: Duration,
    /// How far ahead of now `tat` may run (the burst).
    tolerance: Duration,
}

impl Gcra {
    /// `rate` units per second, `burst` at once; `None` (no limit) for rate 0.
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        (rate > 0).then(|| {
            let unit = Duration::from_secs(1) / rate;
            Gcra {
                tat: Instant::now(),
                unit,
                // `burst` units at once: the last of them brings `tat` to
                // `unit * burst` ahead, one unit past what is let through.
                tolerance: unit * (burst.max(1) - 1),
            }
        })
    }

    pub fn charge(&mut self, units: u32, now: Instant) {
        self.tat = self.tat.max(now) + self.unit * units;
    }

    /// When the next unit may go, if not now.
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        let at = self.tat.checked_sub(self.tolerance)?;
        (at > now).then_some(at)
    }

    /// Take `units` if the budget holds them now; otherwise take nothing and
    /// say how long until it would.
    pub fn try_charge(&mut self, units: u32, now: Instant) -> Result<(), Duration> {
        let tat = self.tat.max(now) + self.unit * units;
        let at = tat.checked_sub(self.tolerance + self.unit).unwrap_or(now);
        if at > now {
            return Err(at - now);
        }
        self.tat = tat;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_charge_takes_all_or_nothing() {
        let mut g = Gcra::new(10, 100).unwrap();
        let now = Instant::now();
        assert!(g.try_charge(100, now).is_ok(), "the whole burst at once");
        let wait = g.try_charge(20, now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2), "twenty units' worth");
        assert!(g.try_charge(20, now + Duration::from_secs(2)).is_ok());
        assert!(
            g.try_charge(101, now + Duration::from_secs(60)).is_err(),
            "more than a burst never fits"
        );
    }
}
