//! How fast one connection's socket is read: a budget of frames (every
//! frame: data, continuation, ping, pong, close) and of bytes per second.
//! Past it the reader stops reading until the budget refills, so a flooding
//! client is slowed down by TCP itself (its frames wait in its own send
//! buffer) instead of taking a core: its CPU and memory on the node are
//! bounded whatever it sends, and nothing it sent is lost.
//!
//! Each budget is a [`Gcra`]: one instant per budget, no timer while the
//! client is within it.

use crate::limits::gcra::Gcra;
use tokio::time::Instant;

/// The frame and byte budgets of one connection; either may be off.
#[derive(Debug)]
pub struct ReadBudget {
    frames: Option<Gcra>,
    bytes: Option<Gcra>,
}

impl ReadBudget {
    /// `frames` per second (burst: twice as many) and `bytes` per second
    /// (burst: twice as many, at least `min_burst_bytes` so that a largest
    /// frame always fits); 0 turns a budget off.
    pub fn new(frames: u32, bytes: u32, min_burst_bytes: usize) -> Self {
        let byte_burst = (bytes.saturating_mul(2)).max(min_burst_bytes as u32);
        ReadBudget {
            frames: Gcra::new(frames, frames.saturating_mul(2)),
            bytes: Gcra::new(bytes, byte_burst),
        }
    }

    pub fn frame(&mut self) {
        if let Some(f) = &mut self.frames {
            f.charge(1, Instant::now());
        }
    }

    pub fn bytes(&mut self, n: usize) {
        if let Some(b) = &mut self.bytes {
            b.charge(n as u32, Instant::now());
        }
    }

    /// When reading may go on, if the budget is spent now.
    pub fn resume_at(&self) -> Option<Instant> {
        let now = Instant::now();
        let f = self.frames.as_ref().and_then(|g| g.ready_at(now));
        let b = self.bytes.as_ref().and_then(|g| g.ready_at(now));
        f.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let mut b = ReadBudget::new(10, 0, 0);
        for _ in 0..20 {
            assert_eq!(b.resume_at(), None, "within the burst of 20");
            b.frame();
        }
        let at = b.resume_at().expect("spent");
        assert_eq!(
            at - Instant::now(),
            Duration::from_millis(100),
            "one frame's worth"
        );
        tokio::time::sleep_until(at).await;
        assert_eq!(b.resume_at(), None);
        b.frame();
        assert!(b.resume_at().is_some(), "at the rate from then on");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.resume_at(), None, "refilled");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_count_too_and_zero_is_off() {
        let mut b = ReadBudget::new(0, 1000, 4096);
        b.bytes(4095);
        assert_eq!(b.resume_at(), None, "the burst holds a largest frame");
        b.bytes(1);
        let wait = |b: &ReadBudget| b.resume_at().map(|at| (at - Instant::now()).as_millis());
        assert_eq!(wait(&b), Some(1), "spent: one byte's worth");
        b.bytes(1000);
        assert_eq!(wait(&b), Some(1001));
        let mut off = ReadBudget::new(0, 0, 0);
        for _ in 0..100_000 {
            off.frame();
            off.bytes(1 << 20);
        }
        assert_eq!(off.resume_at(), None);
    }
}
