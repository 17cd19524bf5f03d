//! chat-gateway: a horizontally scaled WebSocket chat gateway.
//!
//! # Layout
//! - [`config`]: settings (defaults → file → `CHAT__*` env) and their validation.
//! - [`telemetry`]: logging setup.
//! - [`startup`]: builds a node (backends, tasks, HTTP server) and stops it gracefully.
//! - [`shutdown`]: the stop signal.
//! - [`state`]: what handlers and sessions share.
//! - [`routes`]: the HTTP routes (health, auth, `/ws`), listed in one place.
//! - [`serve`]: the main listener's server: actix-web for HTTP, plus the hook that hands WebSocket upgrades to [`ws::upgrade`].
//! - [`error`]: the REST error body.
//! - [`auth`]: JWTs, password hashing, the authenticated-user extractor.
//! - [`domain`]: validated input types (username, message body, ...).
//! - [`admission`]: who may enter which room.
//! - [`ws`]: WebSocket sessions: connection handle, dispatch, socket loops, connection cap.
//! - [`history`]: a room's message pages (Redis recent cache when it provably matches SQL, else SQL).
//! - [`limits`]: per-client limits (address, user) and the trusted proxies that name the client.
//! - [`memory`]: process-wide allocator settings (large blocks go back to the system).
//! - [`open_files`]: the open-files limit, raised at start and watched.
//! - [`metrics`]: Prometheus metrics (`/metrics`).
//! - [`hub`]: this node's connections by room; non-blocking fan-out.
//! - [`node`]: entering/leaving rooms, posting messages, routing bus events to the hub.
//! - [`bus`]: cross-node fan-out behind a trait (in-process; Redis in cluster mode).
//! - [`presence`]: who is in which room, behind a trait (in-process; Redis hashes with TTL).
//! - [`redis`]: the cluster-mode Redis connection and key names.
//! - [`store`]: SQL persistence through sea-orm (SQLite or PostgreSQL).
//! - [`user_status`]: `users.is_online` / `last_seen`, written off the hot path.
//! - [`user_conns`]: the per-user connection cap, behind a trait (node-local; cluster-wide in Redis).
//! - [`clock`]: timestamps as stored and sent.

pub mod admission;
pub mod auth;
pub mod bus;
pub mod clock;
pub mod config;
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
