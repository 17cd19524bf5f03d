//! Exactly once, in `seq` order, per room and per connection.
//!
//! Each connection's writer keeps, per room, the last `seq` it delivered.
//! A live message at or below it is a duplicate and is dropped; one further
//! ahead reveals a gap (a message published while this node was cut off from
//! Redis, or one still in flight from another node), which is filled from
//! the history before the live message goes out. Seq numbers have no holes in
//! SQL (assigned in the inserting transaction), and a message is committed
//! before it is published, so a gap can always be filled.
//!
//! Entering a room starts the cursor at `since_seq` (a resume) or at the
//! room's newest seq as read when the connection was admitted (a plain
//! join), in the *joining* state: live messages that arrive before the
//! connection's `online_users` are dropped rather than sent, because the
//! fill queued right after `online_users` reads them from the history
//! anyway (each was committed before it was published, so before it
//! arrived). So a client always sees `online_users` first, then the room's
//! messages in order, and two messages published out of seq order around
//! the join cannot make the lower one look like a duplicate. Catching up is
//! bounded by the recovery window: further back than that, the client gets
//! `recovery_partial` and should reload the history instead.

use super::text_frame::TextFrame;
use crate::history::History;
use crate::store::StoreError;
use shared::ids::RoomId;
use shared::server_frame::{RecoveryPartialData, ServerFrame};
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// Entered after `seq`; waiting for the first fill.
    Joining(i64),
    /// The last `seq` delivered.
    At(i64),
}

/// What to do with a live message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Already delivered, or (joining) about to be read by the first fill.
    Drop,
    /// Fill `after + 1 ..= seq - 1` first.
    Gap {
        after: i64,
    },
    /// The connection is not (or no longer) in the room.
    NotTracked,
}

/// How to answer a retried send with its stored original (`seq`), so that
/// the connection gets exactly one frame for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not delivered here yet: deliver it in order, like a live message
    /// (the broadcast copy of the republished original is then dropped).
    InOrder,
    /// From before this connection entered the room (the client saw it on
    /// another connection, or never), or the room is not tracked: write it.
    Write,
    /// This connection already delivered it (the broadcast of the original,
    /// carrying the same `client_msg_id`), or the pending fill will: that
    /// frame is the answer, a second would be a duplicate.
    Skip,
}

/// Presence events (`user_joined`, `user_left`) held per room while it is
/// being entered, at most this many (beyond, the oldest go: the snapshot
/// that follows is newer than nearly all of them).
const MAX_HELD: usize = 256;

/// Per connection, per room it is in. One map (the writer's, held by
/// every connection for its life: an empty map costs its inline size only).
#[derive(Default)]
pub struct Cursors {
    rooms: RoomMap,
}

/// A connection's rooms: at most `limits.max_rooms_per_connection` (64),
/// nearly always one. A vector searched in order, grown one entry at a
/// time: a `HashMap`'s smallest table (or a `Vec`'s first growth, to four)
/// costs every idle connection ~300 bytes, one entry costs ~70.
#[derive(Default)]
struct RoomMap(Vec<(RoomId, Room)>);

impl RoomMap {
    fn get(&self, room: &RoomId) -> Option<&Room> {
        self.0.iter().find(|(r, _)| r == room).map(|(_, v)| v)
    }

    fn get_mut(&mut self, room: &RoomId) -> Option<&mut Room> {
        self.0.iter_mut().find(|(r, _)| r == room).map(|(_, v)| v)
    }

    fn insert(&mut self, room: RoomId, value: Room) {
        match self.get_mut(&room) {
            Some(v) => *v = value,
            None => {
                self.0.reserve_exact(1);
                self.0.push((room, value));
            }
        }
    }

    fn remove(&mut self, room: &RoomId) {
        if let Some(at) = self.0.iter().position(|(r, _)| r == room) {
            self.0.swap_remove(at);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&RoomId, &Room)> {
        self.0.iter().map(|(r, v)| (r, v))
    }
}

struct Room {
    cursor: Cursor,
    /// The seq this connection entered after: what is at or below it was
    /// never delivered on this connection.
    entered: i64,
    /// Until the room's `online_users` has gone out, the presence events
    /// that arrived meanwhile. They go out right after it, in order: applied
    /// to the snapshot as set updates they end in the latest state.
    held: Option<VecDeque<TextFrame>>,
    /// The last fill could not read the history (the database away, a pool
    /// timeout): failures in a row, and whether a `Fill` is due. While one
    /// is due, messages that would need a fill are left to it: one history
    /// read per delay, not one per live message.
    failures: u32,
    fill_due: bool,
}

impl Cursors {
    /// Enter `room` after `seq`: nothing is delivered until the first fill,
    /// and presence events wait for the room's `online_users`.
    pub fn track(&mut self, room: RoomId, after: i64) {
        self.rooms.insert(
            room,
            Room {
                cursor: Cursor::Joining(after),
                entered: after,
                held: Some(VecDeque::new()),
                failures: 0,
                fill_due: false,
            },
        );
    }

    pub fn untrack(&mut self, room: RoomId) {
        self.rooms.remove(&room);
    }

    /// A fill of `room` could not read the history: how long to wait
    /// before the `Fill` that tries again (250 ms doubling to 8 s), or
    /// `None` when one is due already (or the room is not tracked).
    pub fn defer(&mut self, room: RoomId) -> Option<std::time::Duration> {
        let r = self.rooms.get_mut(&room)?;
        if r.fill_due {
            return None;
        }
        r.fill_due = true;
        r.failures += 1;
        let ms = 250u64 << (r.failures - 1).min(5);
        Some(std::time::Duration::from_millis(ms))
    }

    /// A `Fill` of `room` is being handled: the one due, if any, arrived.
    pub fn filling(&mut self, room: RoomId) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.fill_due = false;
        }
    }

    /// A fill of `room` read the history.
    pub fn filled(&mut self, room: RoomId) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.failures = 0;
            r.fill_due = false;
        }
    }

    /// A presence event of `room`: `Some` to send now; `None` when it is
    /// held for after the snapshot, or the connection left the room.
    pub fn presence(&mut self, room: RoomId, frame: TextFrame) -> Option<TextFrame> {
        let r = self.rooms.get_mut(&room)?;
        match &mut r.held {
            Some(held) => {
                if held.len() == MAX_HELD {
                    held.pop_front();
                }
                held.push_back(frame);
                None
            }
            None => Some(frame),
        }
    }

    /// The room's snapshot went out: the held presence events follow it.
    pub fn release_held(&mut self, room: RoomId) -> VecDeque<TextFrame> {
        self.rooms
            .get_mut(&room)
            .and_then(|r| r.held.take())
            .unwrap_or_default()
    }

    /// The seq a fill starts after.
    pub fn position(&self, room: RoomId) -> Option<i64> {
        match self.rooms.get(&room)?.cursor {
            Cursor::Joining(seq) | Cursor::At(seq) => Some(seq),
        }
    }

    pub fn decide(&mut self, room: RoomId, seq: i64) -> Decision {
        let Some(r) = self.rooms.get(&room) else {
            return Decision::NotTracked;
        };
        match r.cursor {
            Cursor::Joining(_) => Decision::Drop,
            Cursor::At(last) if seq <= last => Decision::Drop,
            Cursor::At(last) if seq == last + 1 => Decision::Send,
            // The fill due reads it.
            Cursor::At(_) if r.fill_due => Decision::Drop,
            Cursor::At(last) => Decision::Gap { after: last },
        }
    }

    /// How to answer a retried send with its stored original of `seq`.
    pub fn retry(&self, room: RoomId, seq: i64) -> Retry {
        let Some(r) = self.rooms.get(&room) else {
            return Retry::Write;
        };
        match r.cursor {
            _ if seq <= r.entered => Retry::Write,
            // The first fill reads everything after `entered`.
            Cursor::Joining(_) => Retry::Skip,
            Cursor::At(last) if seq <= last => Retry::Skip,
            Cursor::At(_) => Retry::InOrder,
        }
    }

    /// Each tracked room's cursor, for diagnostics: `(room, last seq,
    /// still joining)`.
    pub fn snapshot(&self) -> Vec<(RoomId, i64, bool)> {
        let mut rooms: Vec<_> = self
            .rooms
            .iter()
            .map(|(room, r)| match r.cursor {
                Cursor::Joining(seq) => (*room, seq, true),
                Cursor::At(seq) => (*room, seq, false),
            })
            .collect();
        rooms.sort_unstable();
        rooms
    }

    /// Record that everything up to `seq` went out (never moves backwards;
    /// ends the joining state).
    pub fn delivered(&mut self, room: RoomId, seq: i64) {
        if let Some(r) = self.rooms.get_mut(&room) {
            let (Cursor::Joining(last) | Cursor::At(last)) = r.cursor;
            r.cursor = Cursor::At(last.max(seq));
        }
    }
}

/// Frames that bring a room from `after` up to `until` (or the newest).
pub struct CatchUp {
    pub frames: Vec<TextFrame>,
    /// The seq the cursor is at afterwards.
    pub last: i64,
}

/// Read the missing messages from the history, at most `window` of them.
/// A failed read delivers nothing and leaves the cursor where it was: the
/// caller tries again later (see [`Cursors::defer`]). Skipping ahead instead
/// would drop messages for good, the sender's own echo among them.
pub async fn catch_up(
    history: &History,
    room: RoomId,
    after: i64,
    until: Option<i64>,
    window: u64,
) -> Result<CatchUp, StoreError> {
    let mut frames = Vec::new();
    let target = match until {
        Some(t) => t,
        None => history.last_seq(room).await?,
    };
    if target <= after {
        return Ok(CatchUp {
            frames,
            last: after,
        });
    }
    let mut from = after;
    if (target - after) as u64 > window {
        from = target - window as i64;
        frames.push(partial(room, after, from + 1));
    }
    while from < target {
        let page = history
            .after_seq(room, from, (target - from).min(100) as u64)
            .await?;
        if page.is_empty() {
            break;
        }
        for frame in page {
            from = frame.stream_seq().expect("the stream's frames have a seq");
            frames.push(TextFrame::new(frame.to_json()));
        }
    }
    Ok(CatchUp {
        frames,
        last: from.max(after),
    })
}

fn partial(room: RoomId, since_seq: i64, resumed_at_seq: i64) -> TextFrame {
    TextFrame::new(
        ServerFrame::RecoveryPartial {
            room_id: room,
            data: RecoveryPartialData {
                since_seq,
                resumed_at_seq,
            },
        }
        .to_json(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_decisions() {
        let mut c = Cursors::default();
        let r = RoomId(1);
        assert_eq!(c.decide(r, 1), Decision::NotTracked);
        c.track(r, 6);
        assert_eq!(c.position(r), Some(6));
        assert_eq!(
            c.decide(r, 7),
            Decision::Drop,
            "before the first fill, live messages are left to the fill"
        );
        c.delivered(r, 6);
        assert_eq!(c.decide(r, 7), Decision::Send);
        c.delivered(r, 7);
        assert_eq!(c.decide(r, 7), Decision::Drop);
        assert_eq!(c.decide(r, 3), Decision::Drop);
        assert_eq!(c.decide(r, 8), Decision::Send);
        assert_eq!(c.decide(r, 10), Decision::Gap { after: 7 });
        c.delivered(r, 10);
        c.delivered(r, 9);
        assert_eq!(c.position(r), Some(10), "never backwards");
        c.track(r, 2);
        c.delivered(r, 2);
        assert_eq!(c.decide(r, 3), Decision::Send);
        c.untrack(r);
        assert_eq!(c.decide(r, 11), Decision::NotTracked);
    }

    #[test]
    fn a_retry_is_answered_once_per_connection() {
        let mut c = Cursors::default();
        let r = RoomId(1);
        assert_eq!(c.retry(r, 4), Retry::Write, "not in the room");
        c.track(r, 5);
        assert_eq!(c.retry(r, 5), Retry::Write, "seen before this connection");
        assert_eq!(c.retry(r, 6), Retry::Skip, "the first fill delivers it");
        c.delivered(r, 7);
        assert_eq!(c.retry(r, 6), Retry::Skip, "already delivered here");
        assert_eq!(c.retry(r, 3), Retry::Write);
        assert_eq!(
            c.retry(r, 8),
            Retry::InOrder,
            "never published: now, in order"
        );
        assert_eq!(c.retry(r, 10), Retry::InOrder, "after the gap is filled");
    }

    #[test]
    fn a_failed_fill_is_due_again_with_backoff_and_covers_the_gaps_meanwhile() {
        let mut c = Cursors::default();
        let r = RoomId(2);
        c.track(r, 4);
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis());
        assert_eq!(ms(c.defer(r)), Some(250), "first failure");
        assert_eq!(c.defer(r), None, "one Fill due at a time");
        assert_eq!(c.decide(r, 9), Decision::Drop, "joining: the fill reads it");
        c.filling(r);
        assert_eq!(ms(c.defer(r)), Some(500), "failed again: twice as long");
        c.filling(r);
        c.filled(r);
        c.delivered(r, 6);
        assert_eq!(c.decide(r, 9), Decision::Gap { after: 6 });
        assert_eq!(ms(c.defer(r)), Some(250), "a success resets the backoff");
        assert_eq!(c.decide(r, 9), Decision::Drop, "the Fill due reads it");
        assert_eq!(c.decide(r, 7), Decision::Send, "in order: no fill needed");
        for _ in 0..10 {
            c.filling(r);
            c.defer(r);
        }
        c.filling(r);
        assert_eq!(ms(c.defer(r)), Some(8_000), "capped");
        c.untrack(r);
        c.track(r, 0);
        assert_eq!(ms(c.defer(r)), Some(250), "a new entry starts over");
    }

    #[test]
    fn presence_waits_for_the_snapshot() {
        let mut c = Cursors::default();
        let r = RoomId(3);
        assert_eq!(c.presence(r, "x".into()), None, "not in the room");
        c.track(r, 0);
        assert_eq!(c.presence(r, "joined".into()), None);
        assert_eq!(c.presence(r, "left".into()), None);
        assert_eq!(c.release_held(r), [TextFrame::new("joined"), "left".into()]);
        assert_eq!(c.presence(r, "later".into()), Some("later".into()));
        c.track(r, 0);
        for i in 0..MAX_HELD + 5 {
            c.presence(r, i.to_string().into());
        }
        let held = c.release_held(r);
        assert_eq!(
            (held.len(), held[0].as_ref()),
            (MAX_HELD, "5"),
            "bounded, oldest dropped"
        );
    }
}
