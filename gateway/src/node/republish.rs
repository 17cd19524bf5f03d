//! Getting a stored message onto the bus, also when the first PUBLISH fails.
//!
//! Once a message is committed to SQL it is durable and has its `seq`; from
//! then on the sender is answered with it (its acknowledgement), never with
//! `unavailable`, so that every client message gets exactly one answer. The
//! room must then still receive it: a failed publish is retried here in the
//! background, with backoff, for a bounded time. Nodes that were cut off from
//! Redis meanwhile also catch up from the history once they re-subscribed
//! (`redis::resubscribe`), and any later message of the room reveals the gap,
//! so a publish that is given up is still not a lost message while anything
//! follows it. Publishing a message twice is harmless: each connection's
//! `seq` cursor (`conn::delivery`) drops the second copy.

use super::Node;
use shared::bus_envelope::{BusEnvelope, BusEvent};
use shared::ids::{MessageId, RoomId};
use shared::server_frame::MessageData;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The first background retry, doubling up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// After this long the room relies on refills and gap filling alone.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// The messages with a background publish running: a client retrying the
/// same `client_msg_id` throughout an outage starts one, not one per retry.
pub(super) type InFlight = Arc<Mutex<HashSet<MessageId>>>;

/// Whether a stored event goes on the bus for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Publish {
    /// Just stored: a message also enters the recent-messages cache.
    First,
    /// The original of a retried send, out again (see `Bus::republish`).
    Again,
}

impl Node {
    /// Publish the stored message `data`; if that fails, keep trying in the
    /// background. Returns whether the first attempt went through.
    pub(super) async fn publish_stored(&self, data: &MessageData, how: Publish) -> bool {
        let event = BusEvent::Message(data.clone());
        self.publish_sequenced(data.room_id, data.id, event, how)
            .await
    }

    /// Publish a stored event with a place in its room's sequence (a
    /// message, an edit, a deletion: `id` is its row); if that fails, keep
    /// trying in the background. Returns whether the first attempt went
    /// through.
    pub(super) async fn publish_sequenced(
        &self,
        room: RoomId,
        id: MessageId,
        event: BusEvent,
        how: Publish,
    ) -> bool {
        let envelope = BusEnvelope::new(self.id.clone(), room, event);
        let first = match how {
            Publish::First => self.bus.publish(envelope.clone()).await,
            Publish::Again => self.bus.republish(envelope.clone()).await,
        };
        match first {
            Ok(()) => true,
            Err(e) => {
                crate::metrics::metrics().bus_publish_errors.inc();
                if !self.republishing.lock().unwrap().insert(id) {
                    return false;
                }
                tracing::warn!(room = %room, seq = envelope.event.stream_seq(), error = %e, "stored event not published; retrying in the background");
                let (bus, in_flight) = (Arc::clone(&self.bus), Arc::clone(&self.republishing));
                tokio::spawn(async move {
                    republish(bus, envelope).await;
                    in_flight.lock().unwrap().remove(&id);
                });
                false
            }
        }
    }
}

async fn republish(bus: Arc<dyn crate::bus::Bus>, envelope: BusEnvelope) {
    let give_up = Instant::now() + GIVE_UP_AFTER;
    let mut delay = FIRST_DELAY;
    loop {
        tokio::time::sleep(delay).await;
        match bus.republish(envelope.clone()).await {
            Ok(()) => {
                tracing::info!(room = %envelope.room, "stored event published after a retry");
                crate::metrics::metrics().messages_published.inc();
                return;
            }
            Err(e) if Instant::now() >= give_up => {
                tracing::error!(room = %envelope.room, error = %e, "gave up publishing a stored event; members get it by refill or gap filling");
                return;
            }
            Err(_) => {
                crate::metrics::metrics().bus_publish_errors.inc();
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}
