//! Cross-node fan-out of room events.
//!
//! Contract (as Centrifugo's broker): delivery is at-most-once; a node only
//! receives the rooms it subscribed to, including its own publications (so
//! every member, local or remote, sees one order per node). The [`Node`]
//! subscribes a room when its first local connection enters and unsubscribes
//! when the last one leaves. Received envelopes arrive on the channel handed
//! to the backend at construction.
//!
//! [`Node`]: crate::node::Node

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use shared::bus_envelope::BusEnvelope;
use shared::ids::RoomId;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached right now; nothing was published.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Deliver `envelope` to every node subscribed to its room.
    async fn publish(&self, envelope: BusEnvelope) -> Result<(), BusError>;
    /// Publish `envelope` again (a retry, or a retried send's original):
    /// delivered as by `publish`, but a message is not added to a cache a
    /// second time (see `recent_cache::update_for`).
    async fn republish(&self, envelope: BusEnvelope) -> Result<(), BusError> {
        self.publish(envelope).await
    }
    /// Drop `room`'s recent-messages cache, if the backend keeps one (the
    /// next pages come from SQL): called when a stored event could not be
    /// published, so that the cache does not serve a message as it was
    /// before that event.
    async fn forget_recent(&self, _room: RoomId) -> Result<(), BusError> {
        Ok(())
    }
    /// Start receiving `room`.
    async fn subscribe(&self, room: RoomId) -> Result<(), BusError>;
    /// Stop receiving `room`.
    async fn unsubscribe(&self, room: RoomId) -> Result<(), BusError>;
    /// A cheap, local guess: false when the bus is known to be disconnected
    /// (checked before storing a message that could not be published).
    fn connected(&self) -> bool;
    /// Whether the bus is connected (for `/readyz`).
    async fn ready(&self) -> bool;
    /// "memory" or "redis", for logs.
    fn name(&self) -> &'static str;
}
