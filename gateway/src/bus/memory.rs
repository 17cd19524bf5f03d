//! The in-process bus of a single node: a publication goes straight to this
//! node's router if the room is subscribed. Choose it when one node is all
//! there is (the embedded default); it cannot reach other processes.

use super::{Bus, BusError};
use async_trait::async_trait;
use shared::bus_envelope::BusEnvelope;
use shared::ids::RoomId;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::mpsc;

pub struct MemoryBus {
    /// std Mutex: a set lookup, never held across `.await`.
    subscribed: Mutex<HashSet<RoomId>>,
    tx: mpsc::Sender<BusEnvelope>,
}

impl MemoryBus {
    pub fn new(tx: mpsc::Sender<BusEnvelope>) -> Self {
        MemoryBus {
            subscribed: Mutex::new(HashSet::new()),
            tx,
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, envelope: BusEnvelope) -> Result<(), BusError> {
        if !self
            .subscribed
            .lock()
            .expect("bus lock")
            .contains(&envelope.room)
        {
            return Ok(());
        }
        // Waiting here (rather than dropping) pushes back on publishers when the
        // router lags: in-process there is no reason to lose a message.
        self.tx
            .send(envelope)
            .await
            .map_err(|_| BusError::Unavailable("node is stopping".into()))
    }

    async fn subscribe(&self, room: RoomId) -> Result<(), BusError> {
        self.subscribed.lock().expect("bus lock").insert(room);
        Ok(())
    }

    async fn unsubscribe(&self, room: RoomId) -> Result<(), BusError> {
        self.subscribed.lock().expect("bus lock").remove(&room);
        Ok(())
    }

    fn connected(&self) -> bool {
        !self.tx.is_closed()
    }

    async fn ready(&self) -> bool {
        !self.tx.is_closed()
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
