//! argon2id hashing on the blocking pool: a hash costs tens of milliseconds
//! of CPU and ~19 MiB of memory, and must never run on an async worker.
//!
//! Bounded, because anyone can ask for one (a registration or a login needs
//! no account): at most one hash per core runs at a time, a few more may
//! wait for [`MAX_WAIT`], and beyond that the request is refused at once
//! ([`HashError::Busy`]: 503 with `Retry-After`) instead of queueing without
//! bound on the blocking pool (hundreds of threads, each with its own 19 MiB
//! and, through glibc's arenas, memory never given back).

use crate::domain::Password;
use crate::limits::Limit;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a request waits for a hashing slot before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(2);
/// Requests that may wait for a slot, per slot.
const WAITING_PER_SLOT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("every password-hashing slot is busy")]
    Busy,
    #[error("password hashing failed")]
    Failed,
}

struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// One process, one gate: the cores are the process's.
fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| Gate::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

async fn gated<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    gate().run(work).await
}

impl Gate {
    fn new(slots: usize) -> Self {
        Gate {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            max_waiting: slots * WAITING_PER_SLOT,
        }
    }

    /// Run `work` on the blocking pool once a slot is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let gate = self;
        if gate.waiting.fetch_add(1, Ordering::AcqRel) >= gate.max_waiting {
            gate.waiting.fetch_sub(1, Ordering::AcqRel);
            Limit::PasswordHashing.hit();
            return Err(HashError::Busy);
        }
        let slot = tokio::time::timeout(MAX_WAIT, Arc::clone(&gate.slots).acquire_owned()).await;
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(Ok(slot)) = slot else {
            Limit::PasswordHashing.hit();
            return Err(HashError::Busy);
        };
        // The slot goes with the work: a request given up meanwhile still
        // holds it until its hash is done.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|_| HashError::Failed)
    }
}

pub async fn hash(password: Password) -> Result<String, HashError> {
    gated(move || {
        // A random salt per hash (argon2's `getrandom` feature).
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| HashError::Failed)
    })
    .await?
}

/// `Ok(false)` for a wrong password and for an unreadable stored hash.
/// Without a stored hash (an unknown user) the password is checked against
/// [`decoy`] and `false` returned, in the same time.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, HashError> {
    gated(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| decoy().to_owned());
        let matches = PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        known && matches
    })
    .await
}

/// A hash of no one's password, verified against when the username is
/// unknown, so that a login takes as long whether or not the user exists.
/// Made on the first unknown login, on the blocking pool like every hash.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"decoy: no account has this password")
            .expect("hashing a constant")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_slots_and_the_queue_requests_are_refused_at_once() {
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(2)));
        let cores = gate.slots.available_permits();
        // Hold every slot, then fill the queue.
        let held: Vec<_> = (0..cores)
            .map(|_| gate.slots.clone().try_acquire_owned().unwrap())
            .collect();
        let waiting: Vec<_> = (0..gate.max_waiting)
            .map(|_| tokio::spawn(gate.run(|| 1)))
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        assert!(matches!(gate.run(|| 1).await, Err(HashError::Busy)));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "refused at once"
        );
        drop(held);
        for w in waiting {
            assert_eq!(
                w.await.unwrap().unwrap(),
                1,
                "the queued ones run once slots free up"
            );
        }
    }
}
