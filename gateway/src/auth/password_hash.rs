//! argon2id hashing on the blocking pool: a hash costs tens of milliseconds
//! of CPU and must never run on an async worker thread.

use crate::domain::Password;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

pub async fn hash(password: Password) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        // A random salt per hash (argon2's `getrandom` feature).
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| HashError)
    })
    .await
    .map_err(|_| HashError)?
}

/// `false` for a wrong password and for an unreadable stored hash.
pub async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}
