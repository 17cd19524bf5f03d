//! WebSocket sessions.
//!
//! ```text
//!  upgrade (routes::ws) ──► session::run ──┬─ reader: frames → dispatch → node / conn queue
//!                                          ├─ writer: conn queue → socket, pings
//!                                          └─ cleanup (one place): leave all rooms, close frame
//! ```
//! - [`conn`]: the handle others hold (bounded queue, close request).
//! - [`dispatch`]: client frame → effect, no socket I/O.
//! - [`session`]: the socket loops and the cleanup block.
//! - [`limiter`]: the node's connection cap.

pub mod conn;
pub mod dispatch;
pub mod limiter;
pub mod session;
