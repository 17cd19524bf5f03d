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
                forget_recent(bus.as_ref(), envelope.room).await;
                return;
            }
            Err(_) => {
                crate::metrics::metrics().bus_publish_errors.inc();
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}

/// The cache of the room's recent messages lacks the given-up event, and
/// an edit or a deletion also left the message's cached copy as it was.
/// A page whose run of seqs spans the event's is read from SQL anyway (the
/// seq is missing), but an older page may not span it: drop the cache once
/// Redis answers again, however long that takes (one room id per given-up
/// event, and an event is only stored while the bus looks connected).
async fn forget_recent(bus: &dyn crate::bus::Bus, room: RoomId) {
    loop {
        match bus.forget_recent(room).await {
            Ok(()) => {
                tracing::info!(room = %room, "dropped the room's recent-messages cache, which lacks a given-up event");
                return;
            }
            Err(_) => tokio::time::sleep(MAX_DELAY).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, BusError};
    use async_trait::async_trait;
    use shared::ids::NodeId;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A bus whose Redis is away until `back` is set: it counts publishes
    /// that went through and caches dropped. (A Redis that stays away for
    /// five minutes of paused time is what this stands in for.)
    #[derive(Default)]
    struct AwayBus {
        back: AtomicBool,
        published: AtomicUsize,
        forgotten: AtomicUsize,
    }

    impl AwayBus {
        fn reachable(&self) -> Result<(), BusError> {
            match self.back.load(Ordering::SeqCst) {
                true => Ok(()),
                false => Err(BusError::Unavailable("away".into())),
            }
        }
    }

    #[async_trait]
    impl Bus for AwayBus {
        async fn publish(&self, _: BusEnvelope) -> Result<(), BusError> {
            self.reachable()?;
            self.published.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn forget_recent(&self, _: RoomId) -> Result<(), BusError> {
            self.reachable()?;
            self.forgotten.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn subscribe(&self, _: RoomId) -> Result<(), BusError> {
            Ok(())
        }
        async fn unsubscribe(&self, _: RoomId) -> Result<(), BusError> {
            Ok(())
        }
        fn connected(&self) -> bool {
            true
        }
        async fn ready(&self) -> bool {
            true
        }
        fn name(&self) -> &'static str {
            "away"
        }
    }

    fn envelope() -> BusEnvelope {
        BusEnvelope::new(NodeId("n".into()), RoomId(7), BusEvent::RoomClosed)
    }

    #[tokio::test(start_paused = true)]
    async fn a_given_up_event_drops_the_rooms_cache_once_redis_is_back() {
        let bus = Arc::new(AwayBus::default());
        let task = tokio::spawn(republish(bus.clone(), envelope()));
        tokio::time::sleep(GIVE_UP_AFTER + MAX_DELAY * 3).await;
        assert!(!task.is_finished(), "given up, still dropping the cache");
        assert_eq!(bus.forgotten.load(Ordering::SeqCst), 0);
        bus.back.store(true, Ordering::SeqCst);
        tokio::time::sleep(MAX_DELAY).await;
        assert!(task.is_finished());
        assert_eq!(bus.forgotten.load(Ordering::SeqCst), 1);
        assert_eq!(
            bus.published.load(Ordering::SeqCst),
            0,
            "the event stays given up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_published_in_time_keeps_the_cache() {
        let bus = Arc::new(AwayBus::default());
        let task = tokio::spawn(republish(bus.clone(), envelope()));
        tokio::time::sleep(GIVE_UP_AFTER / 2).await;
        bus.back.store(true, Ordering::SeqCst);
        tokio::time::sleep(MAX_DELAY).await;
        assert!(task.is_finished());
        assert_eq!(bus.published.load(Ordering::SeqCst), 1);
        assert_eq!(bus.forgotten.load(Ordering::SeqCst), 0);
    }
}
