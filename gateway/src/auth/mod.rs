//! Who is calling: JWTs ([`token`]), password hashing ([`password_hash`]) and
//! turning a verified token into a user row ([`resolve_user`]). The REST
//! extractors built on them are `routes::caller`.

pub mod password_hash;
pub mod token;

use crate::error::ApiError;
use crate::store::{ExternalIdentity, Store, StoreError, UserRecord};
use token::{Subject, Verified};

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

/// The user a verified token names. A user first seen through a token
/// minted elsewhere (same secret) is created from the token's claims, which
/// go through the same rules as a registration (cleaned, else `user{id}`),
/// so the gateway can sit behind an external identity provider: by local id
/// for tokens without `iss` (or with the gateway's own), by `(iss, sub)` for
/// an external issuer's. A deleted account stays deleted: its row is kept,
/// so a token for it cannot create it again.
pub async fn resolve_user(store: &Store, token: &Verified) -> Result<UserRecord, ResolveError> {
    let claims = &token.claims;
    let (username, nickname) = (claims.username.as_deref(), claims.nickname.as_deref());
    let now = crate::clock::now();
    let user = match &token.subject {
        Subject::Local(id) => match store.find_user(*id).await? {
            Some(user) => user,
            None => {
                let user = store
                    .ensure_local_user(*id, username, nickname, now)
                    .await?;
                tracing::info!(user_id = %user.id, "user first seen through a token minted elsewhere");
                user
            }
        },
        Subject::External { iss, sub } => {
            let who = ExternalIdentity {
                iss,
                sub,
                username,
                nickname,
            };
            store.ensure_external_identity(who, now).await?
        }
    };
    if user.deleted {
        return Err(ResolveError::Deleted);
    }
    Ok(user)
}

/// The bearer token in these headers, if any. Never logged.
pub fn bearer_in(headers: &actix_web::http::header::HeaderMap) -> Option<&str> {
    let value = headers
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
