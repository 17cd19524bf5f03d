//! One WebSocket connection's life: a reader loop and a writer task on the
//! same actix worker (the message stream is `!Send`), then one cleanup block
//! that runs on every exit path.
//!
//! - The reader decodes frames and dispatches them one at a time, so one
//!   client's messages are stored and broadcast in the order it sent them.
//!   It also enforces the client timeout (nothing heard for N seconds).
//! - The writer drains the connection's bounded queue into the socket and
//!   sends pings. A write that cannot complete within the write timeout means
//!   the client stopped reading: it is closed as a slow consumer.

use crate::state::AppState;
use crate::ws::conn::ConnHandle;
use crate::ws::dispatch::{self, Flow};
use crate::ws::limiter::Slot;
use crate::ws::outbound::Outbound;
use crate::ws::rate::{FrameLimiter, Verdict};
use crate::ws::writer::Writer;
use actix_web::web;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, MessageStream, ProtocolError};
use shared::close_codes::{self, Close};
use shared::error_code::ErrorCode;
use shared::ids::RoomId;
use shared::server_frame::ServerFrame;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

pub struct SessionParts {
    pub state: web::Data<AppState>,
    pub conn: ConnHandle,
    pub queue: mpsc::Receiver<Outbound>,
    pub socket: actix_ws::Session,
    pub stream: MessageStream,
    pub first_room: RoomId,
    /// Deliver the first room's messages after this seq: `since_seq` at
    /// connect, else the room's newest seq when the connection was admitted.
    pub after_seq: i64,
    /// Held for the whole session: the connection-cap slot.
    pub slot: Slot,
}

pub async fn run(parts: SessionParts) {
    let SessionParts {
        state,
        conn,
        queue,
        socket,
        stream,
        first_room,
        after_seq,
        slot,
    } = parts;
    let limits = &state.settings.limits;
    let mut stream = stream
        .max_frame_size(limits.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(limits.max_frame_bytes);
    let ws = state.settings.ws.clone();
    let user = conn.user().id;
    state.node.user_status.connected(user);
    crate::metrics::metrics().connections_accepted.inc();
    tracing::debug!(conn = %conn.key(), user_id = %user, "connected");

    let writer = Writer {
        conn: conn.clone(),
        socket: socket.clone(),
        history: state.history.clone(),
        ping_every: ws.ping_interval(),
        write_timeout: ws.write_timeout(),
        recovery_window: ws.recovery_window,
    };
    let writer = actix_web::rt::spawn(writer.run(queue));

    // The session future lives as long as the connection: the rare, large
    // sub-futures (database, Redis) are boxed so that it stays small
    // (memory per idle connection).
    if let Err(e) = Box::pin(state.node.enter(&conn, first_room, after_seq)).await {
        tracing::warn!(room = %first_room, error = %e, "could not enter the first room");
        conn.send(&ServerFrame::error(
            Some(first_room),
            ErrorCode::Unavailable,
            "could not enter the room, try again",
            None,
        ));
        conn.close(close_codes::TRY_AGAIN_LATER);
    }

    let mut pong_socket = socket.clone();
    let mut last_heard = Instant::now();
    let mut flood = FrameLimiter::new(limits.msg_rate, limits.msg_burst);
    // Set when the node starts draining: this connection's turn to close.
    let mut drain_at: Option<Instant> = None;
    let drain_window = Duration::from_secs(state.settings.server.drain_window_secs);
    while !conn.is_closing() {
        tokio::select! {
            biased;
            _ = conn.closed() => break,
            _ = state.node.shutdown.cancelled(), if drain_at.is_none() => drain_at = Some(Instant::now() + drain_delay(drain_window)),
            _ = sleep_until(drain_at.unwrap_or_else(Instant::now)), if drain_at.is_some() => conn.close(close_codes::SERVICE_RESTART),
            _ = sleep_until(last_heard + ws.client_timeout()) => conn.close(close_codes::HEARTBEAT_TIMEOUT),
            msg = stream.recv() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(AggregatedMessage::Text(text))) if !admit(&mut flood, &conn, Some(&text)) => {}
                    Some(Ok(AggregatedMessage::Binary(_))) if !admit(&mut flood, &conn, None) => {}
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        if let Flow::Close(reason) = Box::pin(dispatch::handle_text(&state, &conn, &text)).await {
                            conn.close(reason);
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        conn.send(&ServerFrame::error(None, ErrorCode::BinaryNotSupported, "protocol v1 takes JSON in text frames", None));
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        let _ = pong_socket.pong(&bytes).await;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) | None => conn.close(close_codes::NORMAL),
                    Some(Err(e)) => conn.close(protocol_close(&e)),
                }
            }
        }
    }

    // The one cleanup block.
    let reason = conn.close_reason().unwrap_or(close_codes::NORMAL);
    crate::metrics::metrics()
        .connections_closed
        .with_label_values(&[crate::metrics::close_reason(reason.code)])
        .inc();
    Box::pin(state.node.leave_all(&conn)).await;
    state.node.user_status.disconnected(user);
    Box::pin(state.node.user_conns.release(user, conn.key())).await;
    let _ = writer.await;
    let frame = CloseReason {
        code: CloseCode::Other(reason.code),
        description: Some(reason.reason.to_owned()),
    };
    let _ = timeout(ws.write_timeout(), socket.close(Some(frame))).await;
    tracing::debug!(conn = %conn.key(), code = reason.code, "closed");
    drop(slot);
}

/// A random moment within the drain window, so that thousands of clients
/// told to reconnect (1012) do not all come back in the same millisecond.
fn drain_delay(window: Duration) -> Duration {
    let ms = window.as_millis() as u64;
    if ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(rand::random_range(0..ms))
    }
}

/// Flood control for one client frame: false if it must not be handled.
fn admit(flood: &mut FrameLimiter, conn: &ConnHandle, text: Option<&str>) -> bool {
    match flood.check() {
        Verdict::Allow => true,
        Verdict::Refuse => {
            let (room, reference) = names_of(text);
            conn.send(&ServerFrame::error(
                room,
                ErrorCode::RateLimited,
                "too many frames, slow down",
                reference,
            ));
            false
        }
        Verdict::Disconnect => {
            conn.close(close_codes::POLICY_VIOLATION);
            false
        }
    }
}

/// The `room_id` and `client_msg_id` a frame carries, for the answer to a
/// refused frame: a `message` gets exactly one answer that names it, even
/// `rate_limited`, so a client can settle that send. Best effort: a frame that
/// is not such JSON (or an id that breaks its rules) is answered without them.
fn names_of(text: Option<&str>) -> (Option<RoomId>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Names {
        room_id: Option<RoomId>,
        client_msg_id: Option<String>,
    }
    match text.and_then(|t| serde_json::from_str::<Names>(t).ok()) {
        Some(names) => (
            names.room_id,
            names
                .client_msg_id
                .filter(|id| crate::domain::ClientMsgId::parse(id).is_ok()),
        ),
        None => (None, None),
    }
}

/// The close code for a broken incoming stream.
fn protocol_close(e: &ProtocolError) -> Close {
    match e {
        ProtocolError::Overflow => close_codes::MESSAGE_TOO_BIG,
        // actix-ws reports an oversized fragmented message and invalid UTF-8 as I/O errors.
        ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            close_codes::INVALID_PAYLOAD
        }
        ProtocolError::Io(io) if io.to_string().contains("continuation size") => {
            close_codes::MESSAGE_TOO_BIG
        }
        ProtocolError::Io(_) => close_codes::NORMAL,
        _ => close_codes::PROTOCOL_ERROR,
    }
}
