//! GCRA, the "virtual scheduling" form of a token bucket: one instant per
//! budget (when it would be full again), no timer, no task. Used for the
//! per-connection budgets, which every idle connection carries.

use std::time::Duration;
use tokio::time::Instant;

/// One rate with a burst: `rate` units per second, `burst` at once. 32
/// bytes: every connection carries a few of these.
#[derive(Debug)]
pub struct Gcra {
    /// When the budget would be back to full, had nothing more arrived.
    tat: Instant,
    /// Nanoseconds one unit is worth (at most a second: `rate` >= 1).
    unit_ns: u32,
    /// How far ahead of now `tat` may run, in nanoseconds (the burst).
    tolerance_ns: u64,
}

impl Gcra {
    /// `rate` units per second, `burst` at once; `None` (no limit) for rate 0.
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        (rate > 0).then(|| {
            let unit_ns = 1_000_000_000 / rate;
            Gcra {
                tat: Instant::now(),
                unit_ns,
                // `burst` units at once: the last of them brings `tat` to
                // `unit * burst` ahead, one unit past what is let through.
                tolerance_ns: u64::from(unit_ns) * u64::from(burst.max(1) - 1),
            }
        })
    }

    fn units(&self, n: u32) -> Duration {
        Duration::from_nanos(u64::from(self.unit_ns) * u64::from(n))
    }

    pub fn charge(&mut self, units: u32, now: Instant) {
        self.tat = self.tat.max(now) + self.units(units);
    }

    /// When the next unit may go, if not now.
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        let at = self
            .tat
            .checked_sub(Duration::from_nanos(self.tolerance_ns))?;
        (at > now).then_some(at)
    }

    /// Take `units` if the budget holds them now; otherwise take nothing and
    /// say how long until it would.
    pub fn try_charge(&mut self, units: u32, now: Instant) -> Result<(), Duration> {
        let tat = self.tat.max(now) + self.units(units);
        let slack = Duration::from_nanos(self.tolerance_ns) + self.units(1);
        let at = tat.checked_sub(slack).unwrap_or(now);
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
    fn small_enough_for_every_connection() {
        assert!(std::mem::size_of::<Option<Gcra>>() <= 32);
    }

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
