//! Who is calling: JWTs ([`token`]), password hashing ([`password_hash`]) and
//! turning a verified token into a user row ([`resolve_user`]).

pub mod extractor;
pub mod password_hash;
pub mod token;

use crate::error::ApiError;
use crate::store::{Store, StoreError, UserRecord};
use token::Claims;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The account was deleted: its tokens are refused (401).
    #[error("this account was deleted")]
    Deleted,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Deleted => ApiError::unauthorized("this account was deleted"),
            ResolveError::Store(e) => e.into(),
        }
    }
}

/// The user a verified token names. A user first seen through a token minted
/// elsewhere (same secret) is created from the token's claims, so the gateway
/// can sit behind an external identity provider.
/// A deleted account stays deleted: its row is kept, so a token minted
/// elsewhere for the same id cannot create it again.
pub async fn resolve_user(store: &Store, claims: &Claims) -> Result<UserRecord, ResolveError> {
    let user = match store.find_user(claims.user_id()).await? {
        Some(user) => user,
        None => store
            .ensure_external_user(
                claims.user_id(),
                claims.username.as_deref(),
                claims.nickname.as_deref(),
                crate::clock::now(),
            )
            .await
            .inspect(
                |u| tracing::info!(user_id = %u.id, "user first seen through an external token"),
            )?,
    };
    if user.deleted {
        return Err(ResolveError::Deleted);
    }
    Ok(user)
}
