//! Typing indicators: a member's `typing` reaches the room's other members
//! on every node (through the bus, like every room event), none of the
//! typing user's own connections, and nothing is stored.
//!
//! [`TypingGate`] relays it at most once per [`INTERVAL`] per user and room;
//! the extra ones are dropped without an answer (a client may send one per
//! keystroke). Each node has its own gate, which also passes (and is closed
//! by) the typing that other nodes relayed (`router.rs`): a user typing
//! through two nodes is then relayed once per interval, and if both relay
//! at the same moment, each member still gets one of the two. Its memory
//! is bounded: [`TypingGate::forget_idle`]
//! (every minute) drops the pairs that have not typed for an interval, so it
//! holds only those that typed lately, each with a connection in the room.

use super::Node;
use crate::bus::BusError;
use crate::conn::ConnHandle;
use shared::bus_envelope::BusEvent;
use shared::ids::{RoomId, UserId};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// At most one relayed `typing` per user and room this often.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// When each (user, room) was last relayed.
#[derive(Default)]
pub(super) struct TypingGate {
    last: Mutex<HashMap<(UserId, RoomId), Instant>>,
}

impl TypingGate {
    /// Whether a `typing` of `user` in `room` is relayed now (and if so,
    /// the next one waits an interval).
    pub(super) fn allow(&self, user: UserId, room: RoomId) -> bool {
        let now = Instant::now();
        match self.pairs().entry((user, room)) {
            Entry::Occupied(e) if now.duration_since(*e.get()) < INTERVAL => false,
            Entry::Occupied(mut e) => {
                e.insert(now);
                true
            }
            Entry::Vacant(e) => {
                e.insert(now);
                true
            }
        }
    }

    /// Forget the pairs whose next `typing` would be relayed anyway.
    pub(super) fn forget_idle(&self) {
        let now = Instant::now();
        let mut pairs = self.pairs();
        pairs.retain(|_, at| now.duration_since(*at) < INTERVAL);
        pairs.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pairs().len()
    }

    fn pairs(&self) -> std::sync::MutexGuard<'_, HashMap<(UserId, RoomId), Instant>> {
        self.last.lock().expect("typing gate lock")
    }
}

impl Node {
    /// Tell `room`'s other members that `conn`'s user is typing (the caller
    /// checked that the connection is in the room). `Ok(false)`: the gate
    /// dropped it.
    pub async fn typing(&self, conn: &ConnHandle, room: RoomId) -> Result<bool, BusError> {
        if !self.typing.allow(conn.user().id, room) {
            return Ok(false);
        }
        let user = conn.user().clone();
        self.publish(room, BusEvent::Typing { user }).await?;
        Ok(true)
    }

    /// See [`TypingGate::forget_idle`].
    pub fn forget_idle_typing(&self) {
        self.typing.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);
    const ROOM: RoomId = RoomId(7);

    #[tokio::test(start_paused = true)]
    async fn one_typing_per_user_and_room_per_interval() {
        let gate = TypingGate::default();
        assert!(gate.allow(ALICE, ROOM));
        assert!(!gate.allow(ALICE, ROOM), "at once again");
        assert!(gate.allow(BOB, ROOM), "another user");
        assert!(gate.allow(ALICE, RoomId(8)), "another room");
        tokio::time::advance(INTERVAL - Duration::from_millis(1)).await;
        assert!(!gate.allow(ALICE, ROOM), "just before the interval");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            gate.allow(ALICE, ROOM),
            "an interval after the last relayed one"
        );
        assert!(!gate.allow(ALICE, ROOM));
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_forgets_pairs_an_interval_after_they_typed() {
        let gate = TypingGate::default();
        for user in 0..100 {
            gate.allow(UserId(user), ROOM);
        }
        tokio::time::advance(INTERVAL / 2).await;
        gate.allow(ALICE, RoomId(8));
        gate.forget_idle();
        assert_eq!(gate.len(), 101, "all typed within the interval");
        tokio::time::advance(INTERVAL / 2).await;
        gate.forget_idle();
        assert_eq!(gate.len(), 1, "only the later one is left");
        assert!(!gate.allow(ALICE, RoomId(8)), "and it still gates");
        tokio::time::advance(INTERVAL).await;
        gate.forget_idle();
        assert_eq!(gate.len(), 0);
    }
}
