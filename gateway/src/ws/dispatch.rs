//! One client frame → its effect, with no socket I/O: every answer is
//! enqueued on the connection. Every rejected frame gets an `error` frame
//! (with the frame's `client_msg_id` as `ref`); nothing is dropped silently.

use crate::conn::ConnHandle;
use crate::conn::outbound::Outbound;
use crate::state::AppState;
use crate::ws::replay::ReplayBudget;
use shared::client_frame::{ClientFrame, SendMessage};
use shared::close_codes::{self, Close};
use shared::error_code::ErrorCode;
use shared::ids::RoomId;
use shared::server_frame::{LeaveReason, ServerFrame};

/// What the session does after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close(Close),
}

pub async fn handle_text(
    state: &AppState,
    conn: &ConnHandle,
    replays: &mut ReplayBudget,
    text: &str,
) -> Flow {
    let frame = match ClientFrame::decode(text) {
        Ok(frame) => frame,
        Err(e) => {
            crate::metrics::metrics()
                .frames_received
                .with_label_values(&["invalid"])
                .inc();
            conn.send(&ServerFrame::error(
                e.room_id,
                e.code,
                e.message,
                e.reference,
            ));
            return Flow::Continue;
        }
    };
    crate::metrics::metrics()
        .frames_received
        .with_label_values(&[frame.kind()])
        .inc();
    match frame {
        ClientFrame::Ping => {
            conn.send(&ServerFrame::Pong);
        }
        ClientFrame::Message(m) => send(state, conn, m).await,
        ClientFrame::JoinRoom { room_id, since_seq } => {
            join(state, conn, replays, room_id, since_seq).await
        }
        ClientFrame::LeaveRoom {
            room_id: Some(room),
        } => {
            if !state.node.leave(conn, room, Some(LeaveReason::Left)).await {
                reject(
                    conn,
                    Some(room),
                    ErrorCode::NotInRoom,
                    format!("not in room {room}"),
                    None,
                );
            }
        }
        ClientFrame::Typing { room_id } => typing(state, conn, room_id).await,
        ClientFrame::Read { room_id, seq } => read(state, conn, room_id, seq).await,
        // As in protocol v1: leave_room without a room leaves everything and ends the connection.
        ClientFrame::LeaveRoom { room_id: None } => return Flow::Close(close_codes::NORMAL),
    }
    Flow::Continue
}

fn reject(
    conn: &ConnHandle,
    room: Option<RoomId>,
    code: ErrorCode,
    message: impl Into<String>,
    reference: Option<String>,
) {
    conn.send(&ServerFrame::error(room, code, message, reference));
}

async fn join(
    state: &AppState,
    conn: &ConnHandle,
    replays: &mut ReplayBudget,
    room: RoomId,
    since: Option<i64>,
) {
    if since.is_some_and(|s| s < 0) {
        return reject(
            conn,
            Some(room),
            ErrorCode::InvalidFrame,
            "since_seq must be >= 0",
            None,
        );
    }
    let max = state.settings.limits.max_rooms_per_connection;
    if !conn.in_room(room) && conn.room_count() >= max {
        return reject(
            conn,
            Some(room),
            ErrorCode::TooManyRooms,
            format!("a connection may be in at most {max} rooms"),
            None,
        );
    }
    let last_seq = match state.node.admit(conn.user().id, room).await {
        Ok(last_seq) => last_seq,
        Err(e) => return reject(conn, Some(room), e.code(), e.to_string(), None),
    };
    if let Some(since) = since
        && let Err(wait) = replays.take(last_seq.saturating_sub(since).max(0) as u64)
    {
        let why = format!(
            "resuming too often: retry in {} s (or without since_seq, reading the history API)",
            wait.as_secs().max(1)
        );
        return reject(conn, Some(room), ErrorCode::RateLimited, why, None);
    }
    // Re-joining a room the connection is in only resumes with an explicit
    // since_seq; without one it repeats `online_users`.
    let entered = match (since, conn.in_room(room)) {
        (None, true) => state
            .node
            .send_online_users(conn, room)
            .await
            .map_err(Into::into),
        (since, _) => {
            state
                .node
                .enter(conn, room, since.unwrap_or(last_seq))
                .await
        }
    };
    if let Err(e) = entered {
        tracing::warn!(room = %room, error = %e, "could not enter room");
        reject(
            conn,
            Some(room),
            ErrorCode::Unavailable,
            "could not enter the room, try again",
            None,
        );
    }
}

/// Relayed to the room's other members, or dropped by the node's typing
/// gate without an answer (see `node::typing`).
async fn typing(state: &AppState, conn: &ConnHandle, room: RoomId) {
    if !conn.in_room(room) {
        let why = format!("join room {room} before typing in it");
        return reject(conn, Some(room), ErrorCode::NotInRoom, why, None);
    }
    if let Err(e) = state.node.typing(conn, room).await {
        tracing::debug!(room = %room, error = %e, "could not relay typing");
        let why = "could not relay typing, try again";
        reject(conn, Some(room), ErrorCode::Unavailable, why, None);
    }
}

/// Move the user's read marker (charged to the user's REST write budget,
/// like `PUT /api/rooms/{id}/read`). Answered only when refused; the user's
/// other connections in the room get `read`.
async fn read(state: &AppState, conn: &ConnHandle, room: RoomId, seq: i64) {
    if seq < 0 {
        return reject(
            conn,
            Some(room),
            ErrorCode::InvalidFrame,
            "seq must be >= 0",
            None,
        );
    }
    if !conn.in_room(room) {
        let why = format!("join room {room} before marking it read");
        return reject(conn, Some(room), ErrorCode::NotInRoom, why, None);
    }
    if let Err(wait) = crate::limits::keyed::check(&state.limits.rest_writes, &conn.user().id) {
        let why = format!(
            "marking read too fast, retry in {} ms",
            wait.as_millis().max(1)
        );
        return reject(conn, Some(room), ErrorCode::RateLimited, why, None);
    }
    let from = Some(conn.key().clone());
    if let Err(e) = state.node.mark_read(conn.user().id, room, seq, from).await {
        reject(conn, Some(room), e.code(), e.to_string(), None);
    }
}

async fn send(state: &AppState, conn: &ConnHandle, m: SendMessage) {
    let reference = m.client_msg_id.clone();
    let room = match m.room_id {
        Some(room) if conn.in_room(room) => room,
        Some(room) => {
            return reject(
                conn,
                Some(room),
                ErrorCode::NotInRoom,
                format!("join room {room} before sending to it"),
                reference,
            );
        }
        None => match conn.single_room() {
            Some(room) => room,
            None => {
                let why = "room_id is required when the connection is not in exactly one room";
                return reject(conn, None, ErrorCode::RoomRequired, why, reference);
            }
        },
    };
    // One send budget per user, shared with REST posts (and the user's
    // other connections on this node).
    if let Err(wait) = crate::limits::keyed::check(&state.limits.sends, &conn.user().id) {
        let why = format!("sending too fast, retry in {} ms", wait.as_millis().max(1));
        return reject(conn, Some(room), ErrorCode::RateLimited, why, reference);
    }
    // The sender's answer is the stored message. A new one also reaches it
    // through the room broadcast; the writer keeps one of the two, and the
    // echo alone if the connection left the room meanwhile. A retry of one
    // already stored gets the original back, once per connection: the
    // original is published again, and a connection that already has it (or
    // gets it from that broadcast) must not see it twice.
    let started = std::time::Instant::now();
    let posted = state
        .node
        .post_message(conn.user(), room, &m.content, m.client_msg_id.as_deref())
        .await;
    tracing::debug!(
        conn = %conn.key(),
        room = %room,
        seq = posted.as_ref().map_or(-1, |p| p.message.seq),
        ms = started.elapsed().as_millis() as u64,
        "message handled"
    );
    match posted {
        Ok(posted) => {
            // The stored message's own room: its seq belongs to that room's sequence.
            let (room, seq) = (posted.message.room_id, posted.message.seq);
            let frame = ServerFrame::Message {
                room_id: posted.message.room_id,
                data: posted.message,
            }
            .to_json()
            .into();
            let answer = if posted.duplicate {
                Outbound::Retried { room, seq, frame }
            } else {
                Outbound::Echo { room, seq, frame }
            };
            state.node.hub.push_in_order(conn, answer);
        }
        Err(e) => reject(conn, Some(room), e.code(), e.message(), reference),
    }
}
