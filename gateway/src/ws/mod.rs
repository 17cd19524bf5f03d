//! WebSocket sessions: the transport and the session. What the rest of the
//! node holds of a connection (its handle and queue) is [`crate::conn`].
//!
//! ```text
//!  upgrade (handshake::check) ──► session::run ──┬─ reader: frames → dispatch → node / conn queue
//!                                                ├─ writer: conn queue → socket, pings, deadlines
//!                                                └─ cleanup (one place): leave all rooms, close frame
//! ```
//! - [`handshake`]: may this `GET /ws` become a WebSocket (token, Origin, limits, room).
//! - [`upgrade`]: the upgrade below actix-web; the TCP stream becomes the session's.
//! - [`frame_reader`] / [`frame_writer`]: WebSocket frames on the bare stream.
//! - [`dispatch`]: client frame → effect, no socket I/O.
//! - [`session`]: the reader loop and the cleanup block.
//! - [`writer`]: queue → socket, pings, exactly-once per room.
//! - [`deadlines`]: the writer's one timer (ping, client silence, drain turn).
//! - [`rate`]: per-connection flood control of client messages.
//! - [`replay`]: how much history a connection may have replayed.
//! - [`read_budget`]: how fast a connection's socket is read (every frame, every byte).

pub mod deadlines;
pub mod dispatch;
pub mod frame_reader;
pub mod frame_writer;
pub mod handshake;
pub mod rate;
pub mod read_budget;
pub mod replay;
pub mod session;
pub mod upgrade;
pub mod writer;

#[cfg(test)]
mod sizes {
    /// Every idle connection holds these for its whole life (the idle
    /// memory per connection: `loadtest/BENCHMARKS.md`): growing one is a
    /// decision, not an accident. Sizes on 64-bit targets.
    #[test]
    fn what_every_connection_holds_stays_small() {
        use std::mem::size_of;
        let sizes = [
            (
                "FrameReader",
                size_of::<super::frame_reader::FrameReader>(),
                176,
            ),
            // 48 + the negotiated permessage-deflate window (no compressor:
            // that state is per worker thread).
            (
                "FrameWriter",
                size_of::<super::frame_writer::FrameWriter>(),
                56,
            ),
            ("Cursors", size_of::<crate::conn::delivery::Cursors>(), 48),
            ("ReplayBudget", size_of::<super::replay::ReplayBudget>(), 16),
            (
                "ReadBudget",
                size_of::<super::read_budget::ReadBudget>(),
                64,
            ),
        ];
        for (name, size, max) in sizes {
            assert!(size <= max, "{name} is {size} bytes (was at most {max})");
        }
    }

    /// The size of the future `f` returns, without calling it.
    fn future_size<A, F: std::future::Future>(_: impl FnOnce(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The two tasks every connection runs for its whole life: their
    /// futures are most of its memory (heaptrack of 10,000 idle
    /// connections, `loadtest/BENCHMARKS.md`). Sizes as the test profile
    /// builds them. The writer holds the connection's one timer
    /// (`deadlines`); the session none.
    #[test]
    fn the_connection_tasks_stay_small() {
        use super::{session, writer};
        let session = future_size(session::run);
        let writer =
            future_size(|(w, q): (writer::Writer, crate::conn::send_queue::QueueReader)| w.run(q));
        assert!(
            session <= 688,
            "the session future is {session} bytes (was at most 688)"
        );
        assert!(
            writer <= 800,
            "the writer future is {writer} bytes (was at most 800)"
        );
    }
}
