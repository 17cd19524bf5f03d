//! chat-gateway: a horizontally scaled WebSocket chat gateway.
//!
//! # Layout
//! Modules depend one way, from the bottom up (no import cycles between
//! them; `tests/layers.rs` checks it):
//!
//! 1. Foundations: [`config`] (settings: defaults → file → `CHAT__*` env,
//!    validated), [`clock`] (timestamps as stored and sent), [`metrics`]
//!    (Prometheus, `/metrics`), [`domain`] (validated input types),
//!    [`telemetry`] (logging), [`memory`] (allocator settings),
//!    [`open_files`] (the open-files limit), [`shutdown`] (the stop signal),
//!    [`recent_cache`] (the format of Redis's recent-messages cache),
//!    [`deflate`] (permessage-deflate: negotiation, compression, inflation).
//! 2. Backends: [`store`] (SQL through sea-orm: SQLite or PostgreSQL),
//!    [`redis`] (the cluster-mode connection and key names), [`bus`]
//!    (cross-node fan-out behind a trait), [`presence`] (who is in which
//!    room, behind a trait), [`user_conns`] (the per-user connection cap),
//!    [`user_status`] (`is_online` / `last_seen`, off the hot path),
//!    [`history`] (a room's message pages), [`limits`] (per-client limits,
//!    the connection cap, request-head deadlines, trusted proxies),
//!    [`auth`] (JWTs, password hashing), [`admission`] (who may enter which
//!    room), [`error`] (the REST error body).
//! 3. [`conn`]: one connection's outgoing side (handle, queue, delivery
//!    cursors), without its socket.
//! 4. [`hub`]: this node's connections by room; non-blocking fan-out.
//! 5. [`node`]: entering and leaving rooms, posting messages, routing bus
//!    events to the hub.
//! 6. [`state`]: what handlers and sessions share.
//! 7. [`ws`] (WebSocket transport and sessions) and [`routes`] (the HTTP
//!    routes, listed in one place).
//! 8. [`serve`] (the main listener: actix-web for HTTP, plus the hook that
//!    hands upgrades to [`ws::upgrade`]) and [`startup`] (builds a node and
//!    stops it gracefully), and [`cli`] (the command line: serve, migrate,
//!    mint a token).

pub mod admission;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
pub mod deflate;
pub mod domain;
pub mod error;
pub mod history;
pub mod hub;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod open_files;
pub mod presence;
pub mod recent_cache;
pub mod redis;
pub mod routes;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod user_conns;
pub mod user_status;
pub mod ws;
