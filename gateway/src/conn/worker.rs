//! [`WorkerId`]: which thread a connection lives on.
//!
//! Each actix worker is a single-threaded runtime that owns the sockets it
//! accepted: a connection's session and writer run there for its whole
//! life. The hub groups a room's members by the worker that holds them, so
//! that a broadcast crosses to each worker once (see `hub::workers`), not
//! once per member.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A thread's number, given on first use and never reused in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub usize);

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static CURRENT: WorkerId = WorkerId(NEXT.fetch_add(1, Ordering::Relaxed));
}

impl WorkerId {
    /// The calling thread's number.
    pub fn current() -> Self {
        CURRENT.with(|id| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_number_per_thread_stable_within_it() {
        let here = WorkerId::current();
        assert_eq!(WorkerId::current(), here);
        let there = std::thread::spawn(WorkerId::current).join().unwrap();
        assert_ne!(there, here);
    }
}
