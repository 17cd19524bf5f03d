//! What every request handler and session shares.

use crate::auth::token::TokenService;
use crate::config::Settings;
use crate::history::History;
use crate::limits::connections::ConnectionLimiter;
use crate::node::Node;
use crate::store::Store;
use std::sync::Arc;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub node: Arc<Node>,
    pub tokens: Arc<TokenService>,
    pub history: History,
    pub limiter: ConnectionLimiter,
    /// Per client address and per user (see `limits`).
    pub limits: crate::limits::Limits,
    /// Cancelled at the stop signal, before the drain (see [`stopping`](Self::stopping)).
    pub stop_signalled: tokio_util::sync::CancellationToken,
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
