//! The attack battery: one hostile client at a time against a real gateway
//! process (the built `gateway` binary, default limits, a fresh SQLite file)
//! on loopback. Each attack is bounded in count and time. While it runs,
//! `/healthz` is sampled every 100 ms, and each test asserts what matters to
//! everyone else on the node: it stays up, `/healthz` answers within
//! 500 ms, a new WebSocket connects within 2 s, its memory grows by less
//! than a stated bound, and the attacker gets the documented close code or
//! status. The bounds are set so that the unprotected node misses them by
//! ten times or more, and a protected one meets them on a loaded CI machine.
//!
//! Timing-sensitive: `scripts/test.sh` runs this binary on its own, one test
//! at a time (`--test-threads 1`), after the other tests.

mod auth;
mod frames;
#[path = "../common/free_port.rs"]
mod free_port;
mod http;
mod node;
mod proxy;
mod raw_ws;
mod replay;
mod rest;
