//! [`ConnHandle`]: what the rest of the node holds of one WebSocket connection.
//!
//! The hub and the node only ever *enqueue* onto a connection (a push that
//! never waits) or *ask it to close*; the session task owns the socket, drains
//! the queue and runs the one cleanup block. A full queue means the client
//! cannot keep up: it is closed as a slow consumer instead of slowing anyone else.

use super::outbound::Outbound;
use super::send_queue::{Pushed, QueueReader, SendQueue};
use super::text_frame::TextFrame;
use super::worker::WorkerId;
use futures_util::task::AtomicWaker;
use shared::close_codes::{self, Close};
use shared::ids::{ConnId, ConnKey, RoomId};
use shared::server_frame::{ServerFrame, UserPublic};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// Cheap to clone; every clone names the same connection.
#[derive(Clone)]
pub struct ConnHandle {
    inner: Arc<Inner>,
}

struct Inner {
    key: ConnKey,
    user: UserPublic,
    /// The thread that accepted it, where its session and writer run.
    worker: WorkerId,
    /// Bounded outgoing queue of encoded frames; the session's writer reads it.
    queue: Arc<SendQueue>,
    /// Set when the connection must end, for whatever reason: the first
    /// reason given wins; read by the session when it closes the socket.
    reason: OnceLock<Close>,
    /// The session's waker while it waits in [`ConnHandle::closed`] (a
    /// `CancellationToken` was a 128-byte allocation and a 72-byte wait per
    /// connection; the writer is woken through its queue).
    session: AtomicWaker,
    /// When the handle was made; `heard_ms` counts from it.
    born: Instant,
    /// Milliseconds from `born` to the last frame heard from the client:
    /// written by the session's reader, read by the writer's heartbeat
    /// deadline (`ws::deadlines`).
    heard_ms: AtomicU64,
    /// Rooms this connection is in. std Mutex: held for a lookup or an insert, never across `.await`.
    rooms: Mutex<Vec<RoomId>>,
}

/// The outcome of [`ConnHandle::push`] for the connection (the queue's own
/// outcome is `send_queue::Pushed`: a full queue closes the connection here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The queue was full: the connection is now closing as a slow consumer.
    Slow,
    /// The connection is already gone.
    Closed,
}

impl ConnHandle {
    /// A handle and the receiving end of its queue (for the session task),
    /// on the calling thread's worker.
    pub fn new(key: ConnKey, user: UserPublic, capacity: usize) -> (Self, QueueReader) {
        let queue = Arc::new(SendQueue::new(capacity));
        let rx = QueueReader::new(queue.clone());
        let inner = Inner {
            key,
            user,
            worker: WorkerId::current(),
            queue,
            reason: OnceLock::new(),
            session: AtomicWaker::new(),
            born: Instant::now(),
            heard_ms: AtomicU64::new(0),
            rooms: Mutex::new(Vec::new()),
        };
        (
            ConnHandle {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    pub fn id(&self) -> ConnId {
        self.inner.key.conn
    }

    pub fn key(&self) -> &ConnKey {
        &self.inner.key
    }

    pub fn user(&self) -> &UserPublic {
        &self.inner.user
    }

    pub fn worker(&self) -> WorkerId {
        self.inner.worker
    }

    /// Enqueue an encoded frame without waiting.
    pub fn push(&self, item: Outbound) -> Enqueued {
        match self.inner.queue.push(item) {
            Pushed::Queued => Enqueued::Queued,
            Pushed::Full => {
                self.close_slow();
                Enqueued::Slow
            }
            Pushed::Closed => Enqueued::Closed,
        }
    }

    /// Enqueue an encoded frame outside any room's sequence.
    pub fn push_frame(&self, frame: TextFrame) -> Enqueued {
        self.push(Outbound::Frame(frame))
    }

    /// Encode and enqueue a frame meant for this connection alone.
    pub fn send(&self, frame: &ServerFrame) -> Enqueued {
        crate::metrics::metrics()
            .frames_sent
            .with_label_values(&[frame.kind()])
            .inc();
        self.push_frame(TextFrame::new(frame.to_json()))
    }

    /// Close it as a slow consumer (counted once per connection).
    pub fn close_slow(&self) {
        if !self.is_closing() {
            crate::metrics::metrics().slow_consumers.inc();
        }
        self.close(close_codes::SLOW_CONSUMER);
    }

    /// Ask the connection to close; the first reason sticks.
    pub fn close(&self, reason: Close) {
        if self.inner.reason.set(reason).is_ok() {
            self.inner.queue.end();
            self.inner.session.wake();
        }
    }

    pub fn close_reason(&self) -> Option<Close> {
        self.inner.reason.get().copied()
    }

    pub fn is_closing(&self) -> bool {
        self.inner.reason.get().is_some()
    }

    /// Resolves once [`close`](Self::close) was called.
    /// The client was heard from just now (any frame).
    pub fn heard(&self) {
        let ms = self.inner.born.elapsed().as_millis() as u64;
        self.inner.heard_ms.store(ms, Ordering::Relaxed);
    }

    /// When the client was last heard from (the handle's creation at first),
    /// to the millisecond below.
    pub fn last_heard(&self) -> Instant {
        self.inner.born + Duration::from_millis(self.inner.heard_ms.load(Ordering::Relaxed))
    }

    /// One waiter at a time: the session task (or a test standing in for it).
    pub fn closed(&self) -> impl Future<Output = ()> + '_ {
        let closing = || self.is_closing().then_some(());
        super::one_waiter::wait_until(&self.inner.session, closing)
    }

    pub fn rooms(&self) -> Vec<RoomId> {
        self.inner.rooms.lock().expect("rooms lock").clone()
    }

    pub fn room_count(&self) -> usize {
        self.inner.rooms.lock().expect("rooms lock").len()
    }

    pub fn in_room(&self, room: RoomId) -> bool {
        self.inner.rooms.lock().expect("rooms lock").contains(&room)
    }

    /// The only room, when the connection is in exactly one.
    pub fn single_room(&self) -> Option<RoomId> {
        match self.inner.rooms.lock().expect("rooms lock").as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// Record entering `room`; false if it was already there.
    pub(crate) fn add_room(&self, room: RoomId) -> bool {
        let mut rooms = self.inner.rooms.lock().expect("rooms lock");
        if rooms.contains(&room) {
            return false;
        }
        rooms.push(room);
        true
    }

    /// Record leaving `room`; false if it was not there.
    pub(crate) fn remove_room(&self, room: RoomId) -> bool {
        let mut rooms = self.inner.rooms.lock().expect("rooms lock");
        let before = rooms.len();
        rooms.retain(|r| *r != room);
        rooms.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{NodeId, UserId};

    fn conn(queue: usize) -> (ConnHandle, QueueReader) {
        let user = UserPublic {
            id: UserId(1),
            username: "u".into(),
            nickname: "U".into(),
        };
        ConnHandle::new(
            ConnKey {
                node: NodeId("n".into()),
                conn: ConnId(1),
            },
            user,
            queue,
        )
    }

    #[test]
    fn a_full_queue_closes_as_slow_consumer() {
        let (c, _rx) = conn(2);
        assert_eq!(c.push_frame("a".into()), Enqueued::Queued);
        assert_eq!(c.push_frame("b".into()), Enqueued::Queued);
        assert_eq!(c.push_frame("c".into()), Enqueued::Slow);
        assert!(c.is_closing());
        assert_eq!(c.close_reason(), Some(close_codes::SLOW_CONSUMER));
        c.close(close_codes::NORMAL);
        assert_eq!(
            c.close_reason(),
            Some(close_codes::SLOW_CONSUMER),
            "first reason wins"
        );
    }

    #[test]
    fn a_dropped_receiver_reads_as_closed() {
        let (c, rx) = conn(2);
        drop(rx);
        assert_eq!(c.push_frame("a".into()), Enqueued::Closed);
    }

    #[test]
    fn rooms_bookkeeping() {
        let (c, _rx) = conn(2);
        assert!(c.add_room(RoomId(1)));
        assert!(!c.add_room(RoomId(1)));
        assert_eq!(c.single_room(), Some(RoomId(1)));
        assert!(c.add_room(RoomId(2)));
        assert_eq!(c.single_room(), None);
        assert!(c.remove_room(RoomId(1)));
        assert!(!c.remove_room(RoomId(1)));
        assert_eq!(c.rooms(), vec![RoomId(2)]);
    }
}
