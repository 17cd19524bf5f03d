//! One WebSocket connection's life: a reader loop and a writer task on the
//! actix worker that accepted it, then one cleanup block that runs on every
//! exit path and ends with the closing handshake.
//!
//! - The reader decodes frames and dispatches them one at a time, so one
//!   client's messages are stored and broadcast in the order it sent them.
//!   It notes when it last heard the client, and holds no timer.
//! - The writer drains the connection's bounded queue into the socket, and
//!   keeps the deadlines (pings, the client timeout, the drain's turn: see
//!   `ws::deadlines`). A write that cannot complete within the write timeout
//!   means the client stopped reading: it is closed as a slow consumer.

use crate::conn::ConnHandle;
use crate::conn::outbound::Outbound;
use crate::limits::connections::Slot;
use crate::state::AppState;
use crate::ws::deadlines::Deadlines;
use crate::ws::dispatch::{self, Flow};
use crate::ws::frame_reader::{FrameReader, Incoming};
use crate::ws::frame_writer::FrameWriter;
use crate::ws::rate::{FrameLimiter, Verdict};
use crate::ws::replay::ReplayBudget;
use crate::ws::writer::Writer;
use actix_web::web;
use shared::close_codes::{self, Close};
use shared::error_code::ErrorCode;
use shared::ids::RoomId;
use shared::server_frame::ServerFrame;
use std::time::Duration;
use tokio::time::{Instant, timeout};

/// How long the closing handshake waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

pub struct SessionParts {
    pub state: web::Data<AppState>,
    pub conn: ConnHandle,
    pub queue: crate::conn::send_queue::QueueReader,
    pub reader: FrameReader,
    pub writer: FrameWriter,
    pub first_room: RoomId,
    /// Deliver the first room's messages after this seq: `since_seq` at
    /// connect, else the room's newest seq when the connection was admitted.
    pub after_seq: i64,
    /// Held for the whole session: the connection-cap slot.
    pub slot: Slot,
}

/// `parts` comes boxed: an async fn keeps its arguments for its whole
/// life, beside the locals they are moved into, and this future lives as
/// long as the connection (memory per idle connection).
pub async fn run(parts: Box<SessionParts>) {
    let SessionParts {
        state,
        conn,
        queue,
        mut reader,
        writer,
        first_room,
        after_seq,
        slot,
    } = *parts;
    let limits = &state.settings.limits;
    let ws = &state.settings.ws;
    let user = conn.user().id;
    // This worker's fan-out task, before the connection joins a room.
    state.node.hub.attach_worker();
    state.node.user_status.connected(user);
    crate::metrics::metrics().connections_accepted.inc();
    tracing::debug!(conn = %conn.key(), user_id = %user, "connected");

    let drain_window = Duration::from_secs(state.settings.server.drain_window_secs);
    let writer = Writer {
        conn: conn.clone(),
        out: writer,
        history: state.history.clone(),
        deadlines: Deadlines::new(
            Instant::now(),
            ws.ping_interval(),
            ws.client_timeout(),
            drain_window,
        ),
        shutdown: state.node.shutdown.clone(),
        write_timeout: ws.write_timeout(),
        recovery_window: ws.recovery_window,
    };
    let writer = actix_web::rt::spawn(writer.run(queue));

    // The session future lives as long as the connection: the rare, large
    // sub-futures (database, Redis) are boxed so that it stays small
    // (memory per idle connection).
    let entering = Instant::now();
    let entered = Box::pin(state.node.enter(&conn, first_room, after_seq)).await;
    tracing::debug!(conn = %conn.key(), room = %first_room, ok = entered.is_ok(), ms = entering.elapsed().as_millis() as u64, "entered the first room");
    if let Err(e) = entered {
        tracing::warn!(room = %first_room, error = %e, "could not enter the first room");
        conn.send(&ServerFrame::error(
            Some(first_room),
            ErrorCode::Unavailable,
            "could not enter the room, try again",
            None,
        ));
        conn.close(close_codes::TRY_AGAIN_LATER);
    }
    // The client's silence counts from here, where reading starts, not
    // from the upgrade: entering the first room may have taken a while.
    conn.heard();

    // Set when there is nothing to wait for after our close frame: the
    // client ended the conversation (close frame or end of stream), or broke
    // the protocol, which fails the connection: TCP closes at once after
    // the close frame (RFC 6455 §7.1.7), no lingering for an answer.
    let mut client_closed = false;
    let mut flood = FrameLimiter::new(limits.msg_rate, limits.msg_burst);
    let mut replays = ReplayBudget::new(ws.recovery_window);
    while !conn.is_closing() {
        tokio::select! {
            biased;
            _ = conn.closed() => break,
            msg = reader.next() => {
                conn.heard();
                match msg {
                    Ok(Incoming::Text(text)) if !within_frame_rate(&mut flood, &conn, Some(&text)) => {}
                    Ok(Incoming::Binary(_)) if !within_frame_rate(&mut flood, &conn, None) => {}
                    Ok(Incoming::Text(text)) => {
                        if let Flow::Close(reason) = Box::pin(dispatch::handle_text(&state, &conn, &mut replays, &text)).await {
                            conn.close(reason);
                        }
                    }
                    Ok(Incoming::Binary(_)) => {
                        conn.send(&ServerFrame::error(None, ErrorCode::BinaryNotSupported, "protocol v1 takes JSON in text frames", None));
                    }
                    Ok(Incoming::Ping(bytes)) => {
                        conn.push(Outbound::Pong(bytes));
                    }
                    Ok(Incoming::Pong) => {}
                    Ok(Incoming::Close) => {
                        client_closed = true;
                        conn.close(close_codes::NORMAL);
                    }
                    Err(reason) => {
                        if reason == close_codes::MESSAGE_TOO_BIG {
                            crate::limits::Limit::FrameSize.hit();
                        }
                        client_closed = true;
                        conn.close(reason);
                    }
                }
            }
        }
    }

    // The one cleanup block.
    let reason = conn.close_reason().unwrap_or(close_codes::NORMAL);
    let m = crate::metrics::metrics();
    m.connections_closed
        .with_label_values(&[crate::metrics::close_reason(reason.code)])
        .inc();
    m.connection_seconds
        .observe(entering.elapsed().as_secs_f64());
    Box::pin(state.node.leave_all(&conn)).await;
    state.node.user_status.disconnected(user);
    Box::pin(state.node.user_conns.release(user, conn.key())).await;
    tracing::debug!(conn = %conn.key(), code = reason.code, "closed");
    if let Ok(out) = writer.await {
        let wait_for_client = !client_closed;
        Box::pin(closing_handshake(
            out,
            &mut reader,
            reason,
            wait_for_client,
            ws.write_timeout(),
            slot,
        ))
        .await;
    }
}

/// Our close frame, then (unless the client closed first or is gone) its
/// answer, so the socket is dropped with nothing unread in it: dropping
/// unread data resets the connection, which can lose the close frame.
/// The connection's slot is given back once the close frame is out: the
/// wait for the answer is only the socket's tail, and must not hold up a
/// node that is stopping.
async fn closing_handshake(
    mut out: FrameWriter,
    reader: &mut FrameReader,
    reason: Close,
    wait_for_client: bool,
    write_timeout: Duration,
    slot: Slot,
) {
    out.close(reason);
    let sent = matches!(timeout(write_timeout, out.flush()).await, Ok(Ok(())));
    drop(slot);
    if sent {
        if wait_for_client {
            let _ = timeout(CLOSE_LINGER, reader.await_close()).await;
        }
        let _ = out.shutdown().await;
    }
}

/// Flood control for one client frame: false if it must not be handled.
fn within_frame_rate(flood: &mut FrameLimiter, conn: &ConnHandle, text: Option<&str>) -> bool {
    match flood.check() {
        Verdict::Allow => true,
        Verdict::Refuse => {
            crate::limits::Limit::MessageRate.hit();
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
