//! What goes through a connection's queue: encoded frames, and the few
//! instructions the writer needs to deliver each room's messages exactly
//! once and in `seq` order (see `conn::delivery`).

use super::text_frame::TextFrame;
use shared::ids::RoomId;

#[derive(Debug, Clone)]
pub enum Outbound {
    /// A frame outside any room's sequence (errors, presence, pong, ...).
    Frame(TextFrame),
    /// The answer to a client's ping, with its payload.
    Pong(bytes::Bytes),
    /// A room's chat message, with its `seq`.
    Message {
        room: RoomId,
        seq: i64,
        frame: TextFrame,
    },
    /// The answer to this connection's own `message`: the stored message,
    /// in sequence like any other while the connection is in the room (the
    /// broadcast copy then is a duplicate), and sent anyway if it left the
    /// room before the broadcast arrived, so every send gets its answer.
    Echo {
        room: RoomId,
        seq: i64,
        frame: TextFrame,
    },
    /// The stored original answering a retried send: delivered in order if
    /// this connection has not had it, written if it predates the
    /// connection's entry, skipped if already delivered here (see
    /// `conn::delivery::Retry`).
    Retried {
        room: RoomId,
        seq: i64,
        frame: TextFrame,
    },
    /// A presence event of `room` (`user_joined`, `user_left`): held while
    /// the room is being entered, until its `online_users` went out.
    Presence { room: RoomId, frame: TextFrame },
    /// The room's `online_users`: the snapshot presence events apply to.
    Snapshot { room: RoomId, frame: TextFrame },
    /// Start delivering `room`'s messages after `since`, from the next fill on.
    Track { room: RoomId, since: i64 },
    /// Catch up on `room` from the history now (after entering it, or after
    /// the bus reconnected), up to `newest` when the caller read the room's
    /// newest seq after subscribing (the fill then reads nothing when
    /// nothing is missing), else up to the newest as the fill reads it.
    Fill { room: RoomId, newest: Option<i64> },
    /// Stop delivering `room`'s messages.
    Untrack { room: RoomId },
}
