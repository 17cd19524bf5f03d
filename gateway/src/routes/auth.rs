//! `POST /api/auth/register` and `POST /api/auth/login`: a user and a token.

use crate::auth::password_hash;
use crate::domain::{Nickname, Password, Username};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{StoreError, UserRecord};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use serde_json::json;
use shared::server_frame::UserPublic;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    password: String,
    nickname: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
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
    HttpResponse::build(status).json(json!({"user": public(user), "token": token}))
}

#[post("/api/auth/register")]
pub(super) async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
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
    let hash = password_hash::hash(password)
        .await
        .map_err(|_| ApiError::internal())?;
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
    tracing::info!(user_id = %user.id, "registered");
    Ok(with_token(&state, StatusCode::CREATED, &user))
}

#[post("/api/auth/login")]
pub(super) async fn login(
    state: web::Data<AppState>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let LoginBody { username, password } = body.into_inner();
    let wrong = || ApiError::unauthorized("wrong username or password");
    let user = state
        .store
        .find_user_by_username(username.trim())
        .await?
        .ok_or_else(wrong)?;
    // Users created from external tokens have no password and cannot log in here.
    let stored = user.password_hash.clone().ok_or_else(wrong)?;
    if !password_hash::verify(password, stored).await {
        return Err(wrong());
    }
    Ok(with_token(&state, StatusCode::OK, &user))
}
