//! Telling the cluster that connections must leave a room (a kick, a REST
//! leave, a room deletion), after the database change was made.
//!
//! This node's connections leave at once, in the request, so they are out
//! even when the bus is down; the other nodes' through the bus. When the bus
//! cannot carry the event the answer is 503 `unavailable`, not 204: the
//! change is made but connections elsewhere may still be in the room, and
//! the caller must know. Retrying is safe: a kick of a user who is no longer
//! a member, and a deletion of a room that no longer exists, publish the
//! eviction again before answering 404.

use crate::error::{ApiError, RestErrorCode};
use crate::state::AppState;
use actix_web::http::StatusCode;
use shared::bus_envelope::BusEvent;
use shared::ids::{RoomId, UserId};
use shared::server_frame::LeaveReason;

/// `user`'s connections leave `room` on every node with `left_room` `reason`.
pub(super) async fn evict(
    state: &AppState,
    room: RoomId,
    user: UserId,
    reason: LeaveReason,
) -> Result<(), ApiError> {
    state.node.evict_user(room, user, reason);
    let event = BusEvent::Evict {
        user_id: user,
        reason,
    };
    state.node.publish(room, event).await.map_err(|e| {
        tracing::warn!(room = %room, user_id = %user, error = %e, "membership removed but other nodes could not be told");
        cluster_not_told()
    })
}

/// Every connection in the deleted `room` leaves it, on every node, with
/// `left_room` `room_deleted`.
pub(super) async fn close_room(state: &AppState, room: RoomId) -> Result<(), ApiError> {
    state.node.evict_room(room, LeaveReason::RoomDeleted);
    state
        .node
        .publish(room, BusEvent::RoomClosed)
        .await
        .map_err(|e| {
            tracing::warn!(room = %room, error = %e, "room deleted but other nodes could not be told");
            cluster_not_told()
        })
}

fn cluster_not_told() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        RestErrorCode::Unavailable,
        "done, but other nodes could not be told; retry the request",
    )
}
