//! One integration-test binary: every test starts real gateway nodes and talks
//! to them over real HTTP and WebSockets.

mod auth;
mod bans;
mod compression;
mod deferred_fills;
mod delivery;
mod direct_messages;
mod drain;
mod endpoints;
#[path = "../common/eventually.rs"]
mod eventually;
mod handshake;
mod health;
mod helpers;
mod hostile;
mod identity;
mod isolation;
mod isolation_model;
mod isolation_reads;
mod kicks;
mod large_rooms;
mod limits;
mod message_edits;
mod metrics;
mod nodes;
mod openapi;
mod persistence;
#[path = "../common/presence_frames.rs"]
mod presence_frames;
mod protocol;
#[path = "../common/raw_ws.rs"]
mod raw_ws;
mod read_markers;
mod retries;
mod rooms;
mod setup;
mod slow_client;
mod typing;
mod web;
#[path = "../common/ws_refusal.rs"]
mod ws_refusal;
