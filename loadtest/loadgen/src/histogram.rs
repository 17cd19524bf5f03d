//! A latency histogram in microseconds with bounded memory: 1 µs buckets
//! below 1 ms, 10 µs below 100 ms, 1 ms up to 60 s. Mergeable, so worker
//! processes can each keep one and the parent adds them up.

use serde::{Deserialize, Serialize};

const FINE: u64 = 1_000;
const MID: u64 = 100_000;
const MAX: u64 = 60_000_000;
const BUCKETS: usize = (FINE + (MID - FINE) / 10 + (MAX - MID) / 1_000) as usize + 1;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

/// The sparse form sent from a worker to the parent.
#[derive(Serialize, Deserialize, Default)]
pub struct Sparse(pub Vec<(u32, u64)>);

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

fn index(us: u64) -> usize {
    let us = us.min(MAX);
    (if us < FINE {
        us
    } else if us < MID {
        FINE + (us - FINE) / 10
    } else {
        FINE + (MID - FINE) / 10 + (us - MID) / 1_000
    }) as usize
}

fn lower_bound(i: usize) -> u64 {
    let i = i as u64;
    let mid_start = FINE;
    let coarse_start = FINE + (MID - FINE) / 10;
    if i < mid_start {
        i
    } else if i < coarse_start {
        FINE + (i - mid_start) * 10
    } else {
        MID + (i - coarse_start) * 1_000
    }
}

impl Histogram {
    pub fn record(&mut self, us: u64) {
        self.counts[index(us)] += 1;
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), in microseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower_bound(i);
            }
        }
        MAX
    }

    pub fn merge(&mut self, other: &Sparse) {
        for &(i, c) in &other.0 {
            self.counts[i as usize] += c;
            self.total += c;
        }
    }

    pub fn sparse(&self) -> Sparse {
        Sparse(
            self.counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u32, *c))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_merge() {
        let mut h = Histogram::default();
        for us in 1..=1000 {
            h.record(us);
        }
        assert_eq!(h.quantile(0.5), 500);
        assert_eq!(h.quantile(0.99), 990);
        let mut other = Histogram::default();
        other.record(250_000);
        h.merge(&other.sparse());
        assert_eq!(h.count(), 1001);
        assert_eq!(h.quantile(1.0), 250_000);
        assert_eq!(index(MAX * 2), BUCKETS - 1);
    }
}
