//! The room a route's path names (`/api/rooms/{id}/...`), as the caller
//! sees it: the opening every room handler shares, as actix extractors.
//!
//! [`RoomInPath`] is the caller (an [`AuthenticatedUser`] or a
//! [`WritingUser`](super::caller::WritingUser)) and the path;
//! [`RoomInPath::visible`] looks the room up: 404 for no such room and for
//! a private room the caller is not in, as if it did not exist.
//! [`VisibleRoom`] is the two at once, for routes without a body or a
//! query. Routes with one take [`RoomInPath`] and look the room up in the
//! handler, so that a malformed body or query is refused before the room
//! is looked for (as is the room deletion, which acts before its 404).
//!
//! The checks come in one order: the caller (401, and 429 for a
//! `WritingUser`), then the path (404 for a malformed one), then the room.

use super::caller::{AuthenticatedUser, app_state};
use crate::domain::Role;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{RoomRecord, UserRecord};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use shared::ids::RoomId;
use std::marker::PhantomData;
use utoipa::IntoParams;

/// Who calls a room route: an [`AuthenticatedUser`] or a
/// [`WritingUser`](super::caller::WritingUser), as a user row.
pub trait Caller: FromRequest<Error = ApiError> + Into<UserRecord> + 'static {}

impl<C: FromRequest<Error = ApiError> + Into<UserRecord> + 'static> Caller for C {}

/// The path of a room route: `{id}`, the room, comes first.
pub trait RoomPath: DeserializeOwned + 'static {
    fn room_id(&self) -> RoomId;
}

/// `/api/rooms/{id}`.
impl RoomPath for i64 {
    fn room_id(&self) -> RoomId {
        RoomId(*self)
    }
}

/// `/api/rooms/{id}/.../{other}`: a member, a ban, a message.
impl RoomPath for (i64, i64) {
    fn room_id(&self) -> RoomId {
        RoomId(self.0)
    }
}

/// `{id}` in the OpenAPI document (`params(RoomParam)`): the handlers read
/// it through [`RoomInPath`], where utoipa cannot see its type.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path only
pub struct RoomParam {
    /// Room id
    id: i64,
}

/// The caller `C` and the path `P` of a room route; the room not yet
/// looked up.
pub struct RoomInPath<C = AuthenticatedUser, P = i64> {
    state: web::Data<AppState>,
    pub user: UserRecord,
    pub path: P,
    caller: PhantomData<fn() -> C>,
}

/// The room a route's path names, which the caller may see, and the
/// caller's role in it (`None`: not a member of a public room).
pub struct VisibleRoom<C = AuthenticatedUser, P = i64> {
    pub user: UserRecord,
    pub room: RoomRecord,
    pub role: Option<Role>,
    pub path: P,
    caller: PhantomData<fn() -> C>,
}

impl<C, P: RoomPath> RoomInPath<C, P> {
    pub fn room_id(&self) -> RoomId {
        self.path.room_id()
    }

    /// The room and the caller's role, or 404 when the caller may not see it.
    pub async fn visible(self) -> Result<VisibleRoom<C, P>, ApiError> {
        let id = self.room_id();
        let not_found = || ApiError::not_found(format!("room {id} not found"));
        let store = &self.state.store;
        let room = store.find_room(id).await?.ok_or_else(not_found)?;
        let role = store
            .member_role(id, self.user.id)
            .await?
            .and_then(|r| Role::parse(&r).ok());
        if room.is_private && role.is_none() {
            return Err(not_found());
        }
        Ok(VisibleRoom {
            user: self.user,
            room,
            role,
            path: self.path,
            caller: PhantomData,
        })
    }
}

impl<C: Caller, P: RoomPath> FromRequest for RoomInPath<C, P> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let caller = C::from_request(req, payload);
        // Refused through `error::path_config`, as a `web::Path` argument was.
        let path = web::Path::<P>::from_request(req, payload).into_inner();
        Box::pin(async move {
            let user = caller.await?.into();
            let path = path?.into_inner();
            Ok(RoomInPath {
                state: state?,
                user,
                path,
                caller: PhantomData,
            })
        })
    }
}

impl<C: Caller, P: RoomPath> FromRequest for VisibleRoom<C, P> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let in_path = RoomInPath::<C, P>::from_request(req, payload);
        Box::pin(async move { Ok(in_path.await?.visible().await?) })
    }
}
