//! The REST caller, as actix extractors: [`AuthenticatedUser`] (a verified
//! `Authorization: Bearer` token and its user row) and [`WritingUser`] (the
//! same, within the user's write budget).

use crate::auth::bearer_in;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::UserRecord;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

/// The bearer token of a request, if any. Never logged.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    bearer_in(req.headers())
}

/// The application state, for an extractor (500 if it is missing).
pub fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(ApiError::internal)
}

/// A REST caller with a verified token and a user row.
pub struct AuthenticatedUser(pub UserRecord);

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let state = state?;
            let token = token.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
            let verified = state
                .tokens
                .verify(&token)
                .map_err(|e| ApiError::unauthorized(e.to_string()))?;
            let user = crate::auth::resolve_user(&state.store, &verified).await?;
            Ok(AuthenticatedUser(user))
        })
    }
}

/// A REST caller about to change something (rooms, memberships, the
/// profile): authenticated, and within the user's write budget
/// (`limits.rest_write_rate`; beyond it 429 with `Retry-After`).
pub struct WritingUser(pub UserRecord);

impl FromRequest for WritingUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let user = AuthenticatedUser::from_request(req, payload);
        Box::pin(async move {
            let AuthenticatedUser(user) = user.await?;
            let state = state?;
            crate::limits::keyed::check(&state.limits.rest_writes, &user.id)
                .map_err(ApiError::rate_limited)?;
            Ok(WritingUser(user))
        })
    }
}

/// The user row of either caller (see `room_access::RoomInPath`).
impl From<AuthenticatedUser> for UserRecord {
    fn from(AuthenticatedUser(user): AuthenticatedUser) -> Self {
        user
    }
}

impl From<WritingUser> for UserRecord {
    fn from(WritingUser(user): WritingUser) -> Self {
        user
    }
}
