//! The writer half of a session: drains the connection's queue into the
//! socket, keeps each room's messages exactly-once and in order (see
//! [`delivery`](super::delivery)), and pings on a timer. Everything queued
//! at a wake-up is encoded into one buffer and leaves in one write. A write
//! that cannot complete within the write timeout means the client stopped
//! reading: it is closed as a slow consumer.

use super::conn::ConnHandle;
use super::delivery::{Cursors, Decision, Retry, catch_up};
use super::frame_writer::FrameWriter;
use super::outbound::Outbound;
use super::outbox::Inbox;
use crate::history::History;
use bytestring::ByteString;
use shared::close_codes;
use shared::ids::RoomId;
use std::time::Duration;
use tokio::time::{Instant, timeout};

/// At most this many queued items per batch (then the close and ping
/// checks get their turn).
const BATCH: usize = 64;
/// How long a room broadcast waits for more frames before it is written
/// (unless this many are queued already). It trades a few milliseconds of
/// latency for fewer system calls: on the 500-member fan-out benchmark,
/// 0 → 1 → 4 ms took the CPU per delivery from 4.8 to 3.6 to 2.6 µs and
/// the p99 latency at saturation from 133 to 89 to 73 ms.
const COALESCE: Duration = Duration::from_millis(4);
const COALESCE_ENOUGH: usize = 16;
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
    /// The socket did not take the frames in time.
    Broken,
}

pub struct Writer {
    pub conn: ConnHandle,
    pub out: FrameWriter,
    pub history: History,
    pub ping_every: Duration,
    pub write_timeout: Duration,
    pub recovery_window: u64,
}

impl Writer {
    /// Run until the connection closes. On a clean close, frames already
    /// queued (an `error`, a `left_room`) still go out before the close frame.
    /// Gives the socket's writing half back for the close frame.
    pub async fn run(mut self, queue: Inbox) -> FrameWriter {
        self.serve(queue).await;
        self.out
    }

    /// The work done at a wake-up is boxed: this future lives as long as the
    /// connection, and its size, taken by every idle connection, would
    /// otherwise be that of the largest thing it ever awaits.
    async fn serve(&mut self, mut queue: Inbox) {
        let mut cursors = Cursors::default();
        let mut ping = tokio::time::interval_at(Instant::now() + self.ping_every, self.ping_every);
        loop {
            let ok = tokio::select! {
                biased;
                _ = self.conn.closed() => break,
                item = queue.recv() => {
                    // A room broadcast waits a moment for the ones behind
                    // it, so that they leave in the same write (a system
                    // call per write is most of the cost of a delivery).
                    // Answers to this client go at once.
                    let broadcast = matches!(item, Outbound::Message { .. } | Outbound::Presence { .. });
                    if broadcast && queue.len() < COALESCE_ENOUGH {
                        tokio::time::sleep(COALESCE).await;
                    }
                    Box::pin(self.drain(&mut cursors, &mut queue, item)).await
                }
                _ = ping.tick() => {
                    self.out.ping();
                    Box::pin(self.flush()).await
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
            Box::pin(self.finish(&mut cursors, &mut queue)).await;
        }
    }

    /// On a clean close: what is queued still goes out.
    async fn finish(&mut self, cursors: &mut Cursors, queue: &mut Inbox) {
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
    async fn drain(&mut self, cursors: &mut Cursors, queue: &mut Inbox, first: Outbound) -> bool {
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
            Outbound::Fill { room } => {
                cursors.filling(room);
                self.release_held(cursors, room).await
                    && match cursors.position(room) {
                        Some(after) => {
                            self.fill(cursors, room, after, None).await != Filled::Broken
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
        frame: ByteString,
        echo: bool,
    ) -> bool {
        match cursors.decide(room, seq) {
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
            Decision::Drop | Decision::NotTracked => true,
            Decision::Gap { after } => {
                crate::metrics::metrics().bus_gaps_filled.inc();
                match self.fill(cursors, room, after, Some(seq - 1)).await {
                    Filled::Written => {
                        cursors.delivered(room, seq);
                        self.write(frame).await
                    }
                    // This message is in the history the deferred fill reads.
                    Filled::Deferred => true,
                    Filled::Broken => false,
                }
            }
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
                        conn.push(Outbound::Fill { room });
                    });
                }
                return Filled::Deferred;
            }
        };
        cursors.filled(room);
        // Evicted while this fill was queued or reading (its `Untrack` is
        // still behind it in the queue): what it read may be newer than the
        // removal. Everything read before this check was stored before it.
        if !self.conn.in_room(room) {
            return Filled::Written;
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
    async fn write(&mut self, frame: ByteString) -> bool {
        self.out.text(frame.as_bytes());
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
