//! Rooms: create, list, read, edit, delete, and who is online in one.
//!
//! Visibility: a private room exists only for its members; to anyone else
//! every room route answers 404, as if it did not exist.

use super::evictions::close_room;
use super::responses::{
    BodyRefused, DatabaseUnavailable, RoomRefused, RoomWriterRefused, Unauthorized, WriterRefused,
};
use super::room_access::{RoomInPath, RoomParam, VisibleRoom};
use crate::domain::{Description, Role, RoomName};
use crate::error::{ApiError, ErrorBody, RestErrorCode};
use crate::routes::caller::{AuthenticatedUser, WritingUser};
use crate::state::AppState;
use crate::store::RoomRecord;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use shared::ids::RoomId;
use shared::server_frame::UserPublic;
use utoipa::{IntoParams, ToSchema};

/// The most users `GET /api/rooms/{id}/online` lists.
const ONLINE_LIST_MAX: usize = 100_000;

/// A room as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct RoomView {
    pub id: RoomId,
    pub name: String,
    pub description: String,
    pub is_private: bool,
    /// `room`, or `dm`: a direct-message room (`POST /api/dms`), private,
    /// with its two users as members and no owner.
    #[schema(example = "room")]
    pub kind: &'static str,
    /// The creator's user id (`null` for room 1 and direct-message rooms).
    #[schema(required = true)]
    pub owner_id: Option<i64>,
    /// RFC 3339, UTC, millisecond precision.
    #[schema(example = "2026-11-26T18:00:00.123Z")]
    pub created_at: String,
    /// The caller's role; `null` if not a member.
    #[schema(required = true)]
    pub role: Option<Role>,
    /// Members of the room (not on every route).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub member_count: Option<u64>,
    /// Users present in the room, across nodes (not on every route).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub online_count: Option<usize>,
    /// The caller's read marker: the newest `seq` read (`GET /api/rooms`,
    /// members only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub last_read_seq: Option<i64>,
    /// Messages after the marker that others wrote, counted up to 1,000
    /// (`GET /api/rooms`, members only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 1000)]
    pub unread_count: Option<u64>,
}

/// One page of rooms.
#[derive(Serialize, ToSchema)]
pub struct RoomPage {
    rooms: Vec<RoomView>,
    /// Pass as `after` for the next page; `null` on the last page.
    #[schema(required = true)]
    next_after: Option<i64>,
}

/// Users present in a room, each once, across nodes.
#[derive(Serialize, ToSchema)]
pub struct OnlineUsers {
    room_id: RoomId,
    users: Vec<UserPublic>,
}

impl RoomView {
    pub fn new(room: &RoomRecord, role: Option<Role>) -> Self {
        RoomView {
            id: room.id,
            name: room.name.clone(),
            description: room.description.clone(),
            is_private: room.is_private,
            kind: if room.is_dm { "dm" } else { "room" },
            owner_id: room.owner_id.map(|u| u.0),
            created_at: crate::clock::rfc3339(room.created_at),
            role,
            member_count: None,
            online_count: None,
            last_read_seq: None,
            unread_count: None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateRoom {
    /// 1–64 characters, no control characters (trimmed).
    #[schema(example = "rust", min_length = 1)]
    name: String,
    /// At most 500 characters (trimmed); default empty.
    description: Option<String>,
    /// Default `false`. A private room is visible to its members only.
    is_private: Option<bool>,
}

/// Create a room; the caller becomes its owner.
#[utoipa::path(
    operation_id = "create_room",
    tag = "rooms",
    security(("bearer" = [])),
    request_body = CreateRoom,
    responses(
        (status = 201, description = "The new room", body = RoomView),
        BodyRefused,
        WriterRefused,
        (status = 403, description = "`too_many_rooms`: the caller owns `limits.max_rooms_per_user` rooms", body = ErrorBody),
        (status = 422, description = "A value breaks a rule", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[post("/api/rooms")]
pub(super) async fn create(
    state: web::Data<AppState>,
    WritingUser(user): WritingUser,
    body: super::input::Json<CreateRoom>,
) -> Result<HttpResponse, ApiError> {
    let name = RoomName::parse(&body.name)?;
    let description = Description::parse(body.description.as_deref().unwrap_or(""))?;
    // Checked, not locked: two creations at the same instant may both pass
    // at the cap; what the cap stops is a flood.
    let max = state.settings.limits.max_rooms_per_user;
    if state.store.rooms_owned(user.id).await? >= max as u64 {
        crate::limits::Limit::RoomsPerUser.hit();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            RestErrorCode::TooManyRooms,
            format!("a user may own at most {max} rooms; delete one first"),
        ));
    }
    let room = state
        .store
        .create_room_with_owner(
            name.as_str(),
            description.as_str(),
            body.is_private.unwrap_or(false),
            user.id,
            crate::clock::now(),
        )
        .await?;
    let mut view = RoomView::new(&room, Some(Role::Owner));
    view.member_count = Some(1);
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Cursor: the last room id of the previous page (its `next_after`).
    after: Option<i64>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
}

/// Public rooms plus the caller's private ones, by id; in the caller's
/// rooms, the read marker and the unread count.
#[utoipa::path(
    operation_id = "list_rooms",
    tag = "rooms",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page of rooms", body = RoomPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        Unauthorized,
        DatabaseUnavailable,
    )
)]
#[get("/api/rooms")]
pub(super) async fn list(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    query: super::input::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let listings = state
        .store
        .visible_rooms(user.id, query.after.map(RoomId), limit)
        .await?;
    let mut rooms = Vec::with_capacity(listings.len());
    for listing in &listings {
        let role = listing.role.as_deref().and_then(|r| Role::parse(r).ok());
        let mut view = RoomView::new(&listing.room, role);
        view.member_count = Some(listing.member_count);
        view.last_read_seq = listing.last_read_seq;
        view.unread_count = listing.unread_count;
        view.online_count = Some(
            state
                .node
                .online_users(listing.room.id, 1)
                .await
                .map(|l| l.total as usize)
                .unwrap_or(0),
        );
        rooms.push(view);
    }
    let next_after = (listings.len() as u64 == limit)
        .then(|| listings.last().map(|l| l.room.id.0))
        .flatten();
    Ok(HttpResponse::Ok().json(RoomPage { rooms, next_after }))
}

/// `limit` query parameter: default 50, 1..=100.
pub fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=crate::history::MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            RestErrorCode::InvalidQuery,
            "limit must be between 1 and 100",
        )),
    }
}

/// One room, with its counts and the caller's role.
#[utoipa::path(
    operation_id = "get_room",
    tag = "rooms",
    security(("bearer" = [])),
    params(RoomParam),
    responses(
        (status = 200, description = "The room", body = RoomView),
        RoomRefused,
        (status = 503, description = "A backend is unavailable", body = ErrorBody),
    )
)]
#[get("/api/rooms/{id}")]
pub(super) async fn read(
    state: web::Data<AppState>,
    VisibleRoom { room, role, .. }: VisibleRoom,
) -> Result<HttpResponse, ApiError> {
    let mut view = RoomView::new(&room, role);
    view.member_count = Some(state.store.member_count(room.id).await?);
    view.online_count = Some(
        state
            .node
            .online_users(room.id, 1)
            .await
            .map(|l| l.total as usize)
            .map_err(|_| ApiError::unavailable())?,
    );
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EditRoom {
    /// 1–64 characters, no control characters (trimmed).
    #[schema(min_length = 1)]
    name: Option<String>,
    /// At most 500 characters (trimmed).
    description: Option<String>,
    is_private: Option<bool>,
}

/// Edit a room (owner or admin); absent fields keep their value.
#[utoipa::path(
    operation_id = "edit_room",
    tag = "rooms",
    security(("bearer" = [])),
    params(RoomParam),
    request_body = EditRoom,
    responses(
        (status = 200, description = "The updated room", body = RoomView),
        BodyRefused,
        RoomWriterRefused,
        (status = 403, description = "Not the owner or an admin; or an admin changing `is_private` (the owner only)", body = ErrorBody),
        (status = 422, description = "A value breaks a rule", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[patch("/api/rooms/{id}")]
pub(super) async fn edit(
    state: web::Data<AppState>,
    at: RoomInPath<WritingUser>,
    body: super::input::Json<EditRoom>,
) -> Result<HttpResponse, ApiError> {
    let VisibleRoom { room, role, .. } = at.visible().await?;
    if !role.is_some_and(Role::moderates) {
        return Err(ApiError::forbidden(
            "only the room's owner or an admin may edit it",
        ));
    }
    // Who may read a room is the owner's decision: an admin making a
    // private room public would open its history to everyone.
    if body.is_private.is_some_and(|p| p != room.is_private) && role != Some(Role::Owner) {
        return Err(ApiError::forbidden(
            "only the owner may change whether the room is private",
        ));
    }
    let name = body.name.as_deref().map(RoomName::parse).transpose()?;
    let description = body
        .description
        .as_deref()
        .map(Description::parse)
        .transpose()?;
    let updated = state
        .store
        .update_room(
            room.id,
            name.as_ref().map(RoomName::as_str),
            description.as_ref().map(Description::as_str),
            body.is_private,
        )
        .await?;
    Ok(HttpResponse::Ok().json(RoomView::new(&updated, role)))
}

/// Delete a room (owner only; never room 1).
///
/// Every connection in the room, on every node, gets `left_room` `room_deleted`.
#[utoipa::path(
    operation_id = "delete_room",
    tag = "rooms",
    security(("bearer" = [])),
    params(RoomParam),
    responses(
        (status = 204, description = "Deleted"),
        WriterRefused,
        (status = 403, description = "Not the owner, or room 1", body = ErrorBody),
        (status = 404, description = "No such room (any connections still in it are told to leave again, so retrying a deletion that answered 503 is safe), or a private room the caller is not in", body = ErrorBody),
        (status = 503, description = "The database is unavailable; or the room was deleted but other nodes could not be told (retry)", body = ErrorBody),
    )
)]
#[delete("/api/rooms/{id}")]
pub(super) async fn remove(
    state: web::Data<AppState>,
    at: RoomInPath<WritingUser>,
) -> Result<HttpResponse, ApiError> {
    let id = at.room_id();
    if state.store.find_room(id).await?.is_none() {
        // Perhaps a retry of a deletion answered 503: tell the nodes again.
        // Ids are never reused (AUTOINCREMENT, identity), so nobody belongs
        // in a room that does not exist.
        close_room(&state, id).await?;
    }
    let VisibleRoom { room, role, .. } = at.visible().await?;
    if role != Some(Role::Owner) {
        return Err(ApiError::forbidden("only the room's owner may delete it"));
    }
    if room.id == RoomId(1) {
        return Err(ApiError::forbidden("the default room cannot be deleted"));
    }
    state.store.delete_room(room.id).await?;
    state.history.forget(room.id).await;
    close_room(&state, room.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Users present in the room, each once, across nodes.
#[utoipa::path(
    operation_id = "online_users",
    tag = "rooms",
    security(("bearer" = [])),
    params(RoomParam),
    responses(
        (status = 200, description = "Who is online", body = OnlineUsers),
        RoomRefused,
        (status = 503, description = "A backend is unavailable", body = ErrorBody),
    )
)]
#[get("/api/rooms/{id}/online")]
pub(super) async fn online(
    state: web::Data<AppState>,
    VisibleRoom { room, .. }: VisibleRoom,
) -> Result<HttpResponse, ApiError> {
    let users = state
        .node
        .online_users(room.id, ONLINE_LIST_MAX)
        .await
        .map_err(|_| ApiError::unavailable())?
        .users;
    Ok(HttpResponse::Ok().json(OnlineUsers {
        room_id: room.id,
        users,
    }))
}
