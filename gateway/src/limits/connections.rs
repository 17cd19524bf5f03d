//! The node's connection cap: a slot is taken before the upgrade (503 when
//! none is left) and given back when the session's [`Slot`] drops, whatever
//! way the session ends.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct ConnectionLimiter {
    slots: Arc<Semaphore>,
    max: usize,
}

/// One open connection; dropping it frees the slot.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl ConnectionLimiter {
    pub fn new(max: usize) -> Self {
        // Far beyond any open-files limit; a semaphore takes no more.
        let max = max.min(Semaphore::MAX_PERMITS);
        ConnectionLimiter {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot, or `None` when `max` are taken (never waits).
    pub fn try_acquire(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        crate::metrics::metrics().connections.inc();
        Some(Slot { _permit: permit })
    }

    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::metrics::metrics().connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_returned() {
        let l = ConnectionLimiter::new(2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(a);
        assert_eq!(l.open(), 1);
        assert!(l.try_acquire().is_some());
    }

    #[test]
    fn any_configured_cap_is_accepted() {
        let l = ConnectionLimiter::new(usize::MAX);
        let _a = l.try_acquire().unwrap();
        assert_eq!(l.open(), 1);
    }
}
