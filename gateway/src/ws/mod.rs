//! WebSocket sessions.
//!
//! ```text
//!  upgrade (routes::ws) ──► session::run ──┬─ reader: frames → dispatch → node / conn queue
//!                                          ├─ writer: conn queue → socket, pings
//!                                          └─ cleanup (one place): leave all rooms, close frame
//! ```
//! - [`conn`]: the handle others hold (bounded queue, close request).
//! - [`dispatch`]: client frame → effect, no socket I/O.
//! - [`session`]: the reader loop and the cleanup block.
//! - [`writer`]: queue → socket, pings, exactly-once per room.
//! - [`outbound`]: what a connection's queue carries.
//! - [`delivery`]: per-room exactly-once, in-order delivery (dedupe by `seq`, gap fill, resume).
//! - [`limiter`]: the node's connection cap.
//! - [`rate`]: per-connection flood control.

pub mod conn;
pub mod delivery;
pub mod dispatch;
pub mod limiter;
pub mod outbound;
pub mod rate;
pub mod session;
pub mod writer;
