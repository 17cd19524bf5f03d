#![doc = include_str!("../README.md")]
//!
//! # Layout
//! - [`ids`]: identifier newtypes (`UserId`, `RoomId`, `ConnId`, `NodeId`, ...).
//! - [`client_frame`]: frames browsers send, and their decoder with typed errors.
//! - [`server_frame`]: frames browsers receive.
//! - [`error_code`]: the `code` of an `error` frame.
//! - [`close_codes`]: WebSocket close codes the gateway uses.
//! - [`bus_envelope`]: the MessagePack envelope nodes exchange over the bus.
//! - `token` (feature `mint`): HS256 tokens minted for tools and tests.

pub mod bus_envelope;
pub mod client_frame;
pub mod close_codes;
pub mod error_code;
pub mod ids;
pub mod server_frame;
#[cfg(feature = "mint")]
pub mod token;
