//! One connection's outgoing side, without its socket: what the hub and the
//! node hold of a connection ([`ConnHandle`]), the bounded queue they push
//! onto ([`send_queue`]), what the queue carries ([`outbound`], frames as
//! [`text_frame`]s: encoded once, compressed at most once), the per-room
//! cursors that make each room's delivery exactly-once and in order
//! ([`delivery`]), and which worker thread holds it ([`worker`]). The
//! socket side (reading, writing, the session) is `ws`'s; this module knows
//! nothing of it, so the hub and the node, which sit below `ws`, can depend
//! on it.

pub mod delivery;
mod handle;
mod one_waiter;
pub mod outbound;
pub mod send_queue;
pub mod text_frame;
pub mod worker;

pub use handle::{ConnHandle, Enqueued};
