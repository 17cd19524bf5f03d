//! The in-process bus: a publication goes straight to the router of every
//! node subscribed to the room. Alone (the embedded default: one node) it
//! reaches this node only; [`MemoryNetwork`] links several nodes of one
//! process (the test suites' in-process clusters). It cannot reach other
//! processes: that is the Redis bus.

use super::{Bus, BusError};
use async_trait::async_trait;
use shared::bus_envelope::BusEnvelope;
use shared::ids::RoomId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Several in-process nodes' buses, linked: what one publishes reaches
/// every one subscribed to the room, its own included, as through Redis.
#[derive(Default)]
pub struct MemoryNetwork {
    /// std Mutex: a list walk, never held across `.await`.
    nodes: Mutex<Vec<Arc<Endpoint>>>,
}

/// One node's end: the rooms it subscribed and its router's queue.
struct Endpoint {
    /// std Mutex: a set lookup, never held across `.await`.
    subscribed: Mutex<HashSet<RoomId>>,
    tx: mpsc::Sender<BusEnvelope>,
}

impl Endpoint {
    fn subscribed_to(&self, room: RoomId) -> bool {
        self.subscribed.lock().expect("bus lock").contains(&room)
    }
}

pub struct MemoryBus {
    me: Arc<Endpoint>,
    network: Option<Arc<MemoryNetwork>>,
}

impl MemoryBus {
    /// A bus of this node alone.
    pub fn new(tx: mpsc::Sender<BusEnvelope>) -> Self {
        MemoryBus {
            me: Arc::new(Endpoint {
                subscribed: Mutex::new(HashSet::new()),
                tx,
            }),
            network: None,
        }
    }

    /// This node's bus on `network`, shared with the other nodes on it.
    pub fn linked(network: &Arc<MemoryNetwork>, tx: mpsc::Sender<BusEnvelope>) -> Self {
        let bus = MemoryBus::new(tx);
        let mut nodes = network.nodes.lock().expect("bus lock");
        // Stopped nodes' ends go when the next node joins.
        nodes.retain(|node| !node.tx.is_closed());
        nodes.push(Arc::clone(&bus.me));
        drop(nodes);
        MemoryBus {
            network: Some(Arc::clone(network)),
            ..bus
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, envelope: BusEnvelope) -> Result<(), BusError> {
        let others: Vec<mpsc::Sender<BusEnvelope>> = match &self.network {
            Some(network) => network
                .nodes
                .lock()
                .expect("bus lock")
                .iter()
                .filter(|node| !Arc::ptr_eq(node, &self.me) && node.subscribed_to(envelope.room))
                .map(|node| node.tx.clone())
                .collect(),
            None => Vec::new(),
        };
        for tx in others {
            // A node that stopped meanwhile is not this publisher's failure.
            let _ = tx.send(envelope.clone()).await;
        }
        if !self.me.subscribed_to(envelope.room) {
            return Ok(());
        }
        // Waiting here (rather than dropping) pushes back on publishers when the
        // router lags: in-process there is no reason to lose a message.
        self.me
            .tx
            .send(envelope)
            .await
            .map_err(|_| BusError::Unavailable("node is stopping".into()))
    }

    async fn subscribe(&self, room: RoomId) -> Result<(), BusError> {
        self.me.subscribed.lock().expect("bus lock").insert(room);
        Ok(())
    }

    async fn unsubscribe(&self, room: RoomId) -> Result<(), BusError> {
        self.me.subscribed.lock().expect("bus lock").remove(&room);
        Ok(())
    }

    fn connected(&self) -> bool {
        !self.me.tx.is_closed()
    }

    async fn ready(&self) -> bool {
        !self.me.tx.is_closed()
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
