//! The caller's own profile.

use crate::auth::extractor::AuthenticatedUser;
use crate::domain::Nickname;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::UserRecord;
use actix_web::{HttpResponse, get, patch, web};
use serde::Deserialize;
use serde_json::json;

fn me_json(u: &UserRecord) -> serde_json::Value {
    json!({"id": u.id, "username": u.username, "nickname": u.nickname, "created_at": crate::clock::rfc3339(u.created_at)})
}

#[get("/api/users/me")]
pub(super) async fn me(AuthenticatedUser(user): AuthenticatedUser) -> HttpResponse {
    HttpResponse::Ok().json(me_json(&user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EditMe {
    nickname: String,
}

#[patch("/api/users/me")]
pub(super) async fn edit_me(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    body: web::Json<EditMe>,
) -> Result<HttpResponse, ApiError> {
    let nickname = Nickname::parse(&body.nickname)?;
    let updated = state.store.set_nickname(user.id, nickname.as_str()).await?;
    Ok(HttpResponse::Ok().json(me_json(&updated)))
}
