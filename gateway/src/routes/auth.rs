//! `POST /api/auth/register` and `POST /api/auth/login`: a user and a token.

use super::input::ClientIp;
use super::responses::{AuthThrottled, BodyRefused};
use crate::auth::password_hash;
use crate::domain::{Nickname, Password, Username};
use crate::error::{ApiError, ErrorBody};
use crate::limits::keyed::check;
use crate::state::AppState;
use crate::store::{StoreError, UserRecord};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use shared::server_frame::UserPublic;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterBody {
    /// 3–32 characters: letters, digits, `_`, `.`, `-` (trimmed).
    #[schema(example = "alice", min_length = 3)]
    username: String,
    /// 8–128 characters.
    #[schema(example = "password123", min_length = 8, max_length = 128)]
    password: String,
    /// 1–64 characters, no control characters (trimmed); default: the username.
    #[schema(example = "Alice", min_length = 1)]
    nickname: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "password123")]
    password: String,
}

/// A user and a token for them: `{"user": {...}, "token": "eyJ..."}`.
#[derive(Serialize, ToSchema)]
pub struct AuthResponse {
    user: UserPublic,
    /// HS256 JWT; send it as `Authorization: Bearer ...` (or `?token=` on `/ws`).
    token: String,
}

pub fn public(user: &UserRecord) -> UserPublic {
    UserPublic {
        id: user.id,
        username: user.username.clone(),
        nickname: user.nickname.clone(),
    }
}

fn with_token(state: &AppState, status: StatusCode, user: &UserRecord) -> HttpResponse {
    let token = state.tokens.issue(user.id, &user.username, &user.nickname);
    HttpResponse::build(status).json(AuthResponse {
        user: public(user),
        token,
    })
}

/// Register a user; answers with the user and a token.
#[utoipa::path(
    operation_id = "register",
    tag = "auth",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered", body = AuthResponse),
        BodyRefused,
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "A value breaks a rule", body = ErrorBody),
        AuthThrottled,
    )
)]
#[post("/api/auth/register")]
pub(super) async fn register(
    state: web::Data<AppState>,
    ClientIp(client): ClientIp,
    body: super::input::Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    check(&state.limits.auth, &client).map_err(ApiError::rate_limited)?;
    let RegisterBody {
        username,
        password,
        nickname,
    } = body.into_inner();
    let username = Username::parse(&username)?;
    let nickname = match nickname {
        Some(n) => Nickname::parse(&n)?,
        None => Nickname::parse(username.as_str())?,
    };
    let password = Password::parse(password)?;
    // A taken name is answered before any hashing: a hash is the costly
    // part, and asking for a taken name costs the asker nothing. (The
    // insert's unique index still decides a race.)
    if state
        .store
        .find_user_by_username(username.as_str())
        .await?
        .is_some()
    {
        return Err(ApiError::conflict("username is taken"));
    }
    let hash = password_hash::hash(password).await.map_err(hash_error)?;
    let user = state
        .store
        .create_user(
            username.as_str(),
            &hash,
            nickname.as_str(),
            crate::clock::now(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::conflict("username is taken"),
            other => other.into(),
        })?;
    tracing::info!(user_id = %user.id, client = %client, "registered");
    Ok(with_token(&state, StatusCode::CREATED, &user))
}

/// Log in with a username and password; answers with the user and a token.
#[utoipa::path(
    operation_id = "login",
    tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in", body = AuthResponse),
        BodyRefused,
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        AuthThrottled,
    )
)]
#[post("/api/auth/login")]
pub(super) async fn login(
    state: web::Data<AppState>,
    ClientIp(client): ClientIp,
    body: super::input::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    check(&state.limits.auth, &client).map_err(ApiError::rate_limited)?;
    let LoginBody { username, password } = body.into_inner();
    let wrong = || ApiError::unauthorized("wrong username or password");
    // No password longer than registration allows can be right: refused
    // without hashing what could be megabytes. No stored username holds a
    // NUL, and PostgreSQL refuses one in a query parameter (a 500).
    if password.chars().count() > Password::MAX_CHARS || username.contains('\0') {
        return Err(wrong());
    }
    let user = state.store.find_user_by_username(username.trim()).await?;
    // An unknown user (or one created from an external token, who has no
    // password) is checked against a decoy hash: a login takes as long
    // whether or not the username exists, so its time does not tell.
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let matches = password_hash::verify(password, stored)
        .await
        .map_err(hash_error)?;
    match user {
        Some(user) if matches => Ok(with_token(&state, StatusCode::OK, &user)),
        _ => Err(wrong()),
    }
}

fn hash_error(e: password_hash::HashError) -> ApiError {
    match e {
        password_hash::HashError::Busy => {
            ApiError::busy("too many logins and registrations at once, retry in a second")
        }
        password_hash::HashError::Failed => ApiError::internal(),
    }
}
