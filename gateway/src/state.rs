//! What every request handler and session shares.

use crate::auth::token::TokenService;
use crate::config::Settings;
use crate::history::History;
use crate::limits::connections::ConnectionLimiter;
use crate::node::Node;
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub node: Arc<Node>,
    pub tokens: Arc<TokenService>,
    /// Shared, not copied, by every connection's writer.
    pub history: Arc<History>,
    pub limiter: ConnectionLimiter,
    /// Per client address and per user (see `limits`).
    pub limits: crate::limits::Limits,
    /// Cancelled at the stop signal, before the drain (see [`stopping`](Self::stopping)).
    pub stop_signalled: tokio_util::sync::CancellationToken,
    /// The backends' state as last probed (`startup::watch_backends`).
    pub backends: Arc<BackendHealth>,
}

/// Whether the database and the bus answered the last probe. Probed in the
/// background every 2 s, so that `/readyz` answers at once: a probe inline
/// would wait out its timeout on a hung backend, longer than a balancer's
/// check timeout, and the balancer would take the node out after all.
#[derive(Debug)]
pub struct BackendHealth {
    database: AtomicBool,
    bus: AtomicBool,
}

impl BackendHealth {
    /// Both up: a node starts serving only once it has reached both.
    pub fn new() -> Self {
        BackendHealth {
            database: AtomicBool::new(true),
            bus: AtomicBool::new(true),
        }
    }

    pub fn set(&self, database: bool, bus: bool) {
        self.database.store(database, Ordering::Relaxed);
        self.bus.store(bus, Ordering::Relaxed);
    }

    pub fn database(&self) -> bool {
        self.database.load(Ordering::Relaxed)
    }

    pub fn bus(&self) -> bool {
        self.bus.load(Ordering::Relaxed)
    }
}

impl Default for BackendHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl AppState {
    /// True once the drain has begun: `/ws` refuses upgrades and every
    /// connection is being closed.
    pub fn draining(&self) -> bool {
        self.node.shutdown.is_cancelled()
    }

    /// True from the stop signal on, the lame-duck phase included
    /// (`server.lame_duck_secs`): `/readyz` fails so that the balancer
    /// stops sending new clients, while upgrades are still taken.
    pub fn stopping(&self) -> bool {
        self.stop_signalled.is_cancelled() || self.draining()
    }
}
