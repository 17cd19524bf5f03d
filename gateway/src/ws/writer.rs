//! The writer half of a session: drains the connection's queue into the
//! socket, keeps each room's messages exactly-once and in order (see
//! [`delivery`](crate::conn::delivery)), and keeps the connection's
//! [`deadlines`](super::deadlines) on one timer: pings, the client's
//! silence, the node's drain. Everything queued
//! at a wake-up is encoded into one buffer and leaves in one write. A write
//! that cannot complete within the write timeout means the client stopped
//! reading: it is closed as a slow consumer.

use super::deadlines::{Deadlines, Due};
use super::frame_writer::FrameWriter;
use crate::conn::ConnHandle;
use crate::conn::delivery::{Cursors, Decision, Retry, catch_up};
use crate::conn::outbound::Outbound;
use crate::conn::send_queue::QueueReader;
use crate::conn::text_frame::TextFrame;
use crate::history::History;
use shared::close_codes;
use shared::ids::RoomId;
use std::time::Duration;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

/// At most this many queued items per batch (then the close and ping
/// checks get their turn).
const BATCH: usize = 64;
// No timer waits for more frames: the hub hands broadcasts to each worker
// in turns (see `hub::workers`), so what a turn queued for this connection
// is in its queue when the writer wakes, and leaves in one write. (The 4 ms
// wait that did this before cost a timer per connection per broadcast; see
// loadtest/BENCHMARKS.md, session 8.)
/// Write out early once this much is encoded (a long catch-up from the history).
const FLUSH_AT: usize = 64 * 1024;

/// What a fill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filled {
    /// Caught up (or nothing to do).
    Written,
    /// The history could not be read: nothing written, the cursor
    /// unchanged, a `Fill` is due later.
    Deferred,
    /// The connection is no longer in the room: nothing written.
    Left,
    /// The socket did not take the frames in time.
    Broken,
}

pub struct Writer {
    pub conn: ConnHandle,
    pub out: FrameWriter,
    /// An `Arc`: a `History` (its store's pools) is 160 bytes, held by
    /// every connection.
    pub history: std::sync::Arc<History>,
    pub deadlines: Deadlines,
    /// The node's: cancelled when it starts draining.
    pub shutdown: CancellationToken,
    pub write_timeout: Duration,
    pub recovery_window: u64,
}

impl Writer {
    /// Run until the connection closes. On a clean close, frames already
    /// queued (an `error`, a `left_room`) still go out before the close frame.
    /// Gives the socket's writing half back for the close frame.
    pub async fn run(mut self, mut queue: QueueReader) -> FrameWriter {
        // By reference: an async fn's arguments stay in its future, so a
        // queue moved on would be held twice.
        self.serve(&mut queue).await;
        self.out
    }

    /// The work done at a wake-up is boxed: this future lives as long as the
    /// connection, and its size, taken by every idle connection, would
    /// otherwise be that of the largest thing it ever awaits.
    async fn serve(&mut self, queue: &mut QueueReader) {
        let mut cursors = Cursors::default();
        let timer = tokio::time::sleep_until(self.deadlines.next(self.conn.last_heard()));
        tokio::pin!(timer);
        loop {
            let ok = tokio::select! {
                biased;
                // `None`: the connection is closing.
                item = queue.recv() => match item {
                    Some(item) => Box::pin(self.drain(&mut cursors, queue, item)).await,
                    None => break,
                },
                _ = self.shutdown.cancelled(), if !self.deadlines.draining() => {
                    self.deadlines.drain(Instant::now());
                    timer.as_mut().reset(self.deadlines.next(self.conn.last_heard()));
                    true
                }
                () = &mut timer => {
                    let ok = match self.deadlines.due(Instant::now(), self.conn.last_heard()) {
                        Due::Drain => {
                            self.conn.close(close_codes::SERVICE_RESTART);
                            true
                        }
                        Due::Silence => {
                            self.conn.close(close_codes::HEARTBEAT_TIMEOUT);
                            true
                        }
                        Due::Ping => {
                            self.out.ping();
                            Box::pin(self.flush()).await
                        }
                        Due::Nothing => true,
                    };
                    timer.as_mut().reset(self.deadlines.next(self.conn.last_heard()));
                    ok
                }
            };
            if !ok {
                self.conn.close(close_codes::SLOW_CONSUMER);
                return;
            }
        }
        tracing::debug!(conn = %self.conn.key(), cursors = ?cursors.snapshot(), "writer done (room, last seq, joining)");
        let clean = self.conn.close_reason().is_some_and(|r| {
            r != close_codes::SLOW_CONSUMER && r != close_codes::HEARTBEAT_TIMEOUT
        });
        if clean {
            Box::pin(self.finish(&mut cursors, queue)).await;
        }
    }

    /// On a clean close: what is queued still goes out.
    async fn finish(&mut self, cursors: &mut Cursors, queue: &mut QueueReader) {
        while let Ok(item) = queue.try_recv() {
            if !self.handle(cursors, item).await {
                return;
            }
        }
        self.flush().await;
    }

    /// Handle `first` and whatever else is queued already, in one go: the
    /// frames are encoded back to back and leave in one write, and the loop
    /// above runs once per batch. False when the socket did not take them.
    async fn drain(
        &mut self,
        cursors: &mut Cursors,
        queue: &mut QueueReader,
        first: Outbound,
    ) -> bool {
        let mut item = first;
        for _ in 0..BATCH {
            if !self.handle(cursors, item).await {
                return false;
            }
            match queue.try_recv() {
                Ok(next) => item = next,
                Err(_) => return self.flush().await,
            }
        }
        self.handle(cursors, item).await && self.flush().await
    }

    /// False when the socket could not take a frame in time.
    async fn handle(&mut self, cursors: &mut Cursors, item: Outbound) -> bool {
        match item {
            Outbound::Frame(frame) => self.write(frame).await,
            Outbound::Pong(payload) => {
                self.out.pong(&payload);
                true
            }
            Outbound::Message { room, seq, frame } => {
                self.message(cursors, room, seq, frame, false).await
            }
            Outbound::Echo { room, seq, frame } => {
                self.message(cursors, room, seq, frame, true).await
            }
            Outbound::Retried { room, seq, frame } => match cursors.retry(room, seq) {
                Retry::InOrder => self.message(cursors, room, seq, frame, false).await,
                Retry::Write => self.write(frame).await,
                Retry::Skip => true,
            },
            Outbound::Presence { room, frame } => match cursors.presence(room, frame) {
                Some(frame) => self.write(frame).await,
                None => true,
            },
            Outbound::Snapshot { room, frame } => {
                self.write(frame).await && self.release_held(cursors, room).await
            }
            Outbound::Track { room, since } => {
                cursors.track(room, since);
                true
            }
            // Normally after the snapshot; should the snapshot have failed,
            // the held presence events go out here at the latest.
            Outbound::Fill { room, newest } => {
                cursors.filling(room);
                self.release_held(cursors, room).await
                    && match cursors.position(room) {
                        Some(after) => {
                            self.fill(cursors, room, after, newest).await != Filled::Broken
                        }
                        None => true,
                    }
            }
            Outbound::Untrack { room } => {
                cursors.untrack(room);
                true
            }
        }
    }

    /// A room message in `seq` order. An `echo` goes out even when the room
    /// is no longer tracked (it answers the client's own send). Ahead of the
    /// cursor it fills the gap like any other message: the client's answer
    /// must not depend on the broadcast copy arriving (the copy is dropped
    /// as a duplicate then).
    async fn message(
        &mut self,
        cursors: &mut Cursors,
        room: RoomId,
        seq: i64,
        frame: TextFrame,
        echo: bool,
    ) -> bool {
        let decision = match cursors.decide(room, seq) {
            Decision::Gap { after } => {
                crate::metrics::metrics().bus_gaps_filled.inc();
                match self.fill(cursors, room, after, Some(seq - 1)).await {
                    Filled::Written => Decision::Send,
                    // This message is in the history the deferred fill reads.
                    Filled::Deferred => Decision::Drop,
                    // Out of the room (its `Untrack` is behind in the
                    // queue): as if untracked, or the client would get
                    // this message without the ones before it.
                    Filled::Left => Decision::NotTracked,
                    Filled::Broken => return false,
                }
            }
            decided => decided,
        };
        match decision {
            Decision::Send => {
                cursors.delivered(room, seq);
                self.write(frame).await
            }
            Decision::NotTracked if echo => self.write(frame).await,
            Decision::Drop if echo => {
                // Normal when the fill or the broadcast copy got there first.
                tracing::debug!(conn = %self.conn.key(), room = %room, seq, cursor = ?cursors.snapshot(), "echo already delivered");
                true
            }
            Decision::Drop | Decision::NotTracked | Decision::Gap { .. } => true,
        }
    }

    async fn release_held(&mut self, cursors: &mut Cursors, room: RoomId) -> bool {
        for frame in cursors.release_held(room) {
            if !self.write(frame).await {
                return false;
            }
        }
        true
    }

    async fn fill(
        &mut self,
        cursors: &mut Cursors,
        room: RoomId,
        after: i64,
        until: Option<i64>,
    ) -> Filled {
        // Boxed: the history read is large and rare; the writer lives long.
        let read = Box::pin(catch_up(
            &self.history,
            room,
            after,
            until,
            self.recovery_window,
        ))
        .await;
        let caught = match read {
            Ok(caught) => caught,
            Err(e) => {
                // Nothing delivered, the cursor unchanged: try again later.
                if let Some(delay) = cursors.defer(room) {
                    tracing::warn!(conn = %self.conn.key(), room = %room, error = %e, retry_ms = delay.as_millis() as u64, "cannot read the history to catch up; trying again");
                    let conn = self.conn.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        conn.push(Outbound::Fill { room, newest: None });
                    });
                }
                return Filled::Deferred;
            }
        };
        cursors.filled(room);
        // Out of the room while this fill was queued or reading (a leave,
        // an eviction, the connection closing; its `Untrack` is still behind
        // in the queue): what it read may be newer than the removal.
        if !self.conn.in_room(room) {
            return Filled::Left;
        }
        for frame in caught.frames {
            if !self.write(frame).await {
                return Filled::Broken;
            }
        }
        cursors.delivered(room, caught.last);
        Filled::Written
    }

    /// Encode a frame; it is written with the rest of the batch.
    async fn write(&mut self, frame: TextFrame) -> bool {
        self.out.shared_text(&frame);
        self.out.pending() < FLUSH_AT || self.flush().await
    }

    /// False when the socket could not take it all within the write timeout.
    async fn flush(&mut self) -> bool {
        matches!(
            timeout(self.write_timeout, self.out.flush()).await,
            Ok(Ok(()))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use shared::ids::{ConnId, ConnKey, NodeId};
    use shared::server_frame::UserPublic;
    use tokio::io::AsyncReadExt;

    /// The next frame the server wrote (unmasked, as servers send): its
    /// opcode and payload.
    async fn next_frame(client: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await.unwrap();
        let len = match head[1] & 0x7F {
            126 => client.read_u16().await.unwrap() as usize,
            127 => client.read_u64().await.unwrap() as usize,
            n => n as usize,
        };
        let mut payload = vec![0; len];
        client.read_exact(&mut payload).await.unwrap();
        (head[0] & 0x0F, payload)
    }

    /// The next text frame, skipping control frames.
    async fn next_text(client: &mut tokio::net::TcpStream) -> String {
        loop {
            if let (0x1, payload) = next_frame(client).await {
                return String::from_utf8(payload).unwrap();
            }
        }
    }

    /// A fresh SQLite store (kept while the directory lives) with one user
    /// who wrote `count` messages in room 1: seqs 1..=count.
    async fn store_with_messages(
        count: i64,
    ) -> (tempfile::TempDir, Store, crate::store::UserRecord) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/chat.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let now = crate::clock::now();
        let user = store.create_user("w", "h", "W", now).await.unwrap();
        for i in 1..=count {
            store
                .insert_message(RoomId(1), user.id, &format!("m{i}"), None, now)
                .await
                .unwrap();
        }
        (dir, store, user)
    }

    /// A writer for a new connection of `user` in `room`, writing to a
    /// socket whose other end is returned.
    async fn writer_on_a_socket(
        store: &Store,
        user: shared::ids::UserId,
        room: RoomId,
    ) -> (ConnHandle, tokio::net::TcpStream) {
        writer_with_timers(store, user, room, Timers::default()).await
    }

    /// A test writer's timers, and the node's shutdown token it watches.
    struct Timers {
        ping_every: Duration,
        write_timeout: Duration,
        client_timeout: Duration,
        drain_window: Duration,
        shutdown: CancellationToken,
    }

    impl Default for Timers {
        fn default() -> Self {
            Timers {
                ping_every: Duration::from_secs(60),
                write_timeout: Duration::from_secs(5),
                client_timeout: Duration::from_secs(3600),
                drain_window: Duration::ZERO,
                shutdown: CancellationToken::new(),
            }
        }
    }

    /// [`writer_on_a_socket`] with the given timers.
    async fn writer_with_timers(
        store: &Store,
        user: shared::ids::UserId,
        room: RoomId,
        timers: Timers,
    ) -> (ConnHandle, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        let public = UserPublic {
            id: user,
            username: "w".into(),
            nickname: "W".into(),
        };
        let key = ConnKey {
            node: NodeId("n".into()),
            conn: ConnId(1),
        };
        let (conn, inbox) = ConnHandle::new(key, public, 64);
        conn.add_room(room);
        let writer = Writer {
            conn: conn.clone(),
            out: FrameWriter::new(write, None),
            history: std::sync::Arc::new(History::new(store.clone(), None)),
            deadlines: Deadlines::new(
                Instant::now(),
                timers.ping_every,
                timers.client_timeout,
                timers.drain_window,
            ),
            shutdown: timers.shutdown,
            write_timeout: timers.write_timeout,
            recovery_window: 1000,
        };
        tokio::spawn(writer.run(inbox));
        (conn, client)
    }

    fn message_frame(room: RoomId, seq: i64) -> TextFrame {
        TextFrame::new(format!(
            r#"{{"type":"message","room_id":{room},"seq":{seq}}}"#
        ))
    }

    /// A connection left a room (the soak: it closed, and its cleanup left
    /// every room) while the room's next message was still queued, and the
    /// message before that one was not delivered yet (a gap). The fill
    /// found the connection out of the room and delivered nothing, but the
    /// message itself still went out: the client saw seq 285 after 283.
    /// Out of the room, the live message is dropped like any untracked one.
    #[tokio::test]
    async fn a_gap_found_after_leaving_the_room_delivers_nothing_past_it() {
        let (_dir, store, user) = store_with_messages(2).await;
        let (now, room) = (crate::clock::now(), RoomId(1));
        let (conn, mut client) = writer_on_a_socket(&store, user.id, room).await;
        conn.push(Outbound::Track { room, since: 1 });
        conn.push(Outbound::Fill { room, newest: None });
        assert!(next_text(&mut client).await.contains(r#""seq":2"#));
        // Seq 3 stored, not yet arrived; the connection leaves; seq 4 arrives.
        store
            .insert_message(room, user.id, "m3", None, now)
            .await
            .unwrap();
        conn.remove_room(room);
        conn.push(Outbound::Message {
            room,
            seq: 4,
            frame: message_frame(room, 4),
        });
        conn.push(Outbound::Untrack { room });
        conn.push(Outbound::Frame("after".into()));
        assert_eq!(
            next_text(&mut client).await,
            "after",
            "nothing of the room past the gap"
        );
        // An echo is the answer to the client's own send: it still goes out.
        conn.push(Outbound::Echo {
            room,
            seq: 5,
            frame: message_frame(room, 5),
        });
        assert!(next_text(&mut client).await.contains(r#""seq":5"#));
    }

    /// Entering reads the room's newest seq after subscribing, in the same
    /// statement as the membership check; the fill then goes up to it and
    /// no further: whatever is newer comes live, behind it in the queue.
    #[tokio::test]
    async fn a_fill_with_the_newest_seq_given_stops_there() {
        let (_dir, store, user) = store_with_messages(3).await;
        let room = RoomId(1);
        let (conn, mut client) = writer_on_a_socket(&store, user.id, room).await;
        conn.push(Outbound::Track { room, since: 0 });
        conn.push(Outbound::Fill {
            room,
            newest: Some(2),
        });
        conn.push(Outbound::Frame("after".into()));
        assert!(next_text(&mut client).await.contains(r#""seq":1"#));
        assert!(next_text(&mut client).await.contains(r#""seq":2"#));
        assert_eq!(next_text(&mut client).await, "after", "seq 3 comes live");
    }

    /// The next frame's opcode, skipping nothing (pings included).
    async fn next_opcode(client: &mut tokio::net::TcpStream) -> u8 {
        next_frame(client).await.0
    }

    /// In paused time: an idle connection is pinged every `ping_every`,
    /// neither sooner nor later, and a frame written in between does not
    /// move the next ping.
    #[tokio::test]
    async fn an_idle_connection_is_pinged_on_time() {
        let (_dir, store, user) = store_with_messages(0).await;
        // Paused once the store is open: its pool's timeouts are real.
        tokio::time::pause();
        let every = Duration::from_secs(30);
        let timers = Timers {
            ping_every: every,
            ..Timers::default()
        };
        let (conn, mut client) = writer_with_timers(&store, user.id, RoomId(1), timers).await;
        let start = Instant::now();
        // To the timer wheel's millisecond.
        let on_time = |want: Duration| {
            let at = start.elapsed();
            assert!(
                at >= want && at <= want + Duration::from_millis(5),
                "at {at:?}, not {want:?}"
            );
        };
        assert_eq!(next_opcode(&mut client).await, 0x9, "a ping");
        on_time(every);
        tokio::time::sleep(Duration::from_secs(10)).await;
        conn.push(Outbound::Frame("between".into()));
        assert_eq!(next_opcode(&mut client).await, 0x1, "the frame");
        assert_eq!(next_opcode(&mut client).await, 0x9, "the next ping");
        on_time(every * 2);
    }

    /// In paused time: a client that stops reading is closed as a slow
    /// consumer once a write has waited `write_timeout`, not before.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
        let (_dir, store, user) = store_with_messages(0).await;
        // Paused once the store is open: its pool's timeouts are real.
        tokio::time::pause();
        let write_timeout = Duration::from_secs(7);
        let timers = Timers {
            ping_every: Duration::from_secs(3600),
            write_timeout,
            ..Timers::default()
        };
        let (conn, _client) = writer_with_timers(&store, user.id, RoomId(1), timers).await;
        // More than loopback's socket buffers hold, in fewer items than the
        // queue's 64 (a full queue would close it at once, another path).
        let big = TextFrame::new("x".repeat(512 * 1024));
        for _ in 0..48 {
            assert_eq!(
                conn.push(Outbound::Frame(big.clone())),
                crate::conn::Enqueued::Queued
            );
        }
        let start = Instant::now();
        conn.closed().await;
        assert_eq!(conn.close_reason(), Some(close_codes::SLOW_CONSUMER));
        let waited = start.elapsed();
        assert!(
            waited >= write_timeout && waited < write_timeout * 2,
            "closed after {waited:?}"
        );
    }

    /// In paused time: a client heard from at 15 s, with a 20 s client
    /// timeout, is closed 4000 at 35 s: the silence counts from the last
    /// frame heard, not from the timer's first setting.
    #[tokio::test]
    async fn a_silent_client_is_closed_the_client_timeout_after_it_was_last_heard() {
        let (_dir, store, user) = store_with_messages(0).await;
        tokio::time::pause();
        let timers = Timers {
            ping_every: Duration::from_secs(3600),
            client_timeout: Duration::from_secs(20),
            ..Timers::default()
        };
        let (conn, _client) = writer_with_timers(&store, user.id, RoomId(1), timers).await;
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert!(!conn.is_closing());
        conn.heard();
        conn.closed().await;
        assert_eq!(conn.close_reason(), Some(close_codes::HEARTBEAT_TIMEOUT));
        let at = start.elapsed();
        assert!(
            at >= Duration::from_secs(35) && at <= Duration::from_millis(35_005),
            "closed at {at:?}"
        );
    }

    /// In paused time: once the node drains, the connection is closed 1012
    /// within the drain window, and not before the drain began.
    #[tokio::test]
    async fn a_draining_node_closes_the_connection_within_the_window() {
        let (_dir, store, user) = store_with_messages(0).await;
        tokio::time::pause();
        let shutdown = CancellationToken::new();
        let timers = Timers {
            drain_window: Duration::from_secs(10),
            shutdown: shutdown.clone(),
            ..Timers::default()
        };
        let (conn, _client) = writer_with_timers(&store, user.id, RoomId(1), timers).await;
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!conn.is_closing(), "no drain, no close");
        let start = Instant::now();
        shutdown.cancel();
        conn.closed().await;
        assert_eq!(conn.close_reason(), Some(close_codes::SERVICE_RESTART));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
}
