//! Who is calling: JWTs ([`token`]), password hashing ([`password_hash`]) and
//! turning a verified token into a user row ([`resolve_user`]).

pub mod extractor;
pub mod password_hash;
pub mod token;

use crate::store::{Store, StoreError, UserRecord};
use token::Claims;

/// The user a verified token names. A user first seen through a token minted
/// elsewhere (same secret) is created from the token's claims, so the gateway
/// can sit behind an external identity provider.
pub async fn resolve_user(store: &Store, claims: &Claims) -> Result<UserRecord, StoreError> {
    if let Some(user) = store.find_user(claims.user_id()).await? {
        return Ok(user);
    }
    store
        .ensure_external_user(
            claims.user_id(),
            claims.username.as_deref(),
            claims.nickname.as_deref(),
            crate::clock::now(),
        )
        .await
        .inspect(|u| tracing::info!(user_id = %u.id, "user first seen through an external token"))
}
