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
}

impl AppState {
    /// True once the node has begun to stop: `/readyz` fails and `/ws` refuses upgrades.
    pub fn draining(&self) -> bool {
        self.node.shutdown.is_cancelled()
    }
}
