//! The local hub: which of this node's connections are in which room
//! ([`rooms`]), and the fan-out of a room broadcast to them, handed to each
//! worker thread that holds members once ([`workers`]). A broadcast hands
//! the same refcounted bytes to every member.

mod rooms;
mod workers;

pub use rooms::Delivery;
pub use workers::QUEUE as WORKER_QUEUE;

use crate::conn::outbound::Outbound;
use crate::conn::text_frame::TextFrame;
use crate::conn::{ConnHandle, Enqueued};
use rooms::Rooms;
use shared::ids::{ConnId, RoomId, UserId};
use std::sync::Arc;
use workers::{Handed, Handover, Workers};

#[derive(Default)]
pub struct Hub {
    rooms: Arc<Rooms>,
    workers: Workers,
}

/// One encoded frame for a room's local members.
#[derive(Debug)]
pub struct Broadcast {
    pub room: RoomId,
    pub frame: TextFrame,
    /// A chat message's `seq`, so each connection's writer can keep the
    /// room's order and drop duplicates; `None` for presence.
    pub seq: Option<i64>,
    /// Which members get it.
    pub to: Audience,
    /// The frame's `type`, for `chat_gateway_frames_sent_total`.
    pub kind: &'static str,
}

/// Which of a room's members a broadcast is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    All,
    /// All but the connection whose arrival it announces (it gets `online_users`).
    AllBut(ConnId),
    /// All but the connections of the user it is about (`typing`).
    AllButUser(UserId),
    /// The user's own connections but `except` (`read`: the user's other devices).
    User {
        user: UserId,
        except: Option<ConnId>,
    },
}

impl Audience {
    fn includes(self, id: ConnId, conn: &ConnHandle) -> bool {
        match self {
            Audience::All => true,
            Audience::AllBut(skip) => skip != id,
            Audience::AllButUser(user) => conn.user().id != user,
            Audience::User { user, except } => conn.user().id == user && except != Some(id),
        }
    }
}

impl Broadcast {
    /// Count what a delivery of it did.
    fn record(&self, d: Delivery) {
        if d == Delivery::default() {
            return;
        }
        let m = crate::metrics::metrics();
        m.frames_sent
            .with_label_values(&[self.kind])
            .inc_by(d.queued as u64);
        if self.seq.is_some() {
            m.messages_delivered.inc_by(d.queued as u64);
            m.messages_dropped.inc_by(d.slow as u64);
        }
        if d.slow > 0 {
            // Per broadcast, so debug: a storm would flood the log; the
            // counter chat_gateway_slow_consumer_disconnects_total has them.
            tracing::debug!(room = %self.room, slow = d.slow, "slow consumers dropped");
        }
    }
}

impl Hub {
    /// Run the calling worker's fan-out task (once per worker; see
    /// [`workers`]). Call it on the worker, before its connections join rooms.
    pub fn attach_worker(&self) {
        self.workers.attach(&self.rooms);
    }

    /// Hand `b` to every worker holding members of its room, or deliver it
    /// to them here when the worker has no fan-out task. Returns what was
    /// delivered here (the workers count their own).
    pub fn broadcast(&self, b: Broadcast) -> Delivery {
        let b = Arc::new(b);
        let shard = self.rooms.shard(b.room).read().expect("hub shard");
        let mut here = Delivery::default();
        let Some(room) = shard.get(&b.room) else {
            return here;
        };
        let stamp = self.rooms.now();
        for group in &room.groups {
            let d = match self
                .workers
                .hand_over(group.worker, Handover::Room(Arc::clone(&b), stamp))
            {
                Ok(()) => continue,
                Err((Handed::NoTask, _)) => group.deliver(&b, stamp),
                Err((Handed::Full, _)) => group.overflow(),
            };
            here.queued += d.queued;
            here.slow += d.slow;
        }
        drop(shard);
        b.record(here);
        here
    }

    /// Enqueue `item` for `conn` behind the broadcasts already handed to
    /// its worker: the answer to a client's own send must not overtake a
    /// room event published before it (a `user_left`, an earlier message).
    pub fn push_in_order(&self, conn: &ConnHandle, item: Outbound) -> Enqueued {
        match self
            .workers
            .hand_over(conn.worker(), Handover::One(conn.clone(), item))
        {
            Ok(()) => Enqueued::Queued,
            Err((Handed::NoTask, Handover::One(_, item))) => conn.push(item),
            Err((_, _)) => {
                // The worker is a whole queue behind: so is this client.
                conn.close_slow();
                Enqueued::Slow
            }
        }
    }

    /// Add a connection to a room. Returns true when the room had no entry
    /// (the node must start receiving the room from the bus). An entry left
    /// empty by [`take`](Self::take) still counts as subscribed: its
    /// eviction cleanup has not unsubscribed yet.
    pub fn join(&self, room: RoomId, conn: &ConnHandle) -> bool {
        let mut shard = self.rooms.shard(room).write().expect("hub shard");
        let first = !shard.contains_key(&room);
        let since = self.rooms.tick();
        shard.entry(room).or_default().insert(conn, since);
        if first {
            crate::metrics::metrics().rooms.inc();
        }
        first
    }

    /// Take the connections `which` selects out of `room` at once, and return
    /// them: no broadcast after this call reaches them (nor one still on
    /// its way to their worker). The room's entry stays, even empty, until
    /// [`drop_if_empty`](Self::drop_if_empty): the bus subscription it
    /// stands for is undone later, under the room's lock.
    pub fn take(&self, room: RoomId, which: impl Fn(&ConnHandle) -> bool) -> Vec<ConnHandle> {
        let mut shard = self.rooms.shard(room).write().expect("hub shard");
        let Some(members) = shard.get_mut(&room) else {
            return Vec::new();
        };
        let ids: Vec<ConnId> = members
            .members()
            .filter(|c| which(c))
            .map(|c| c.id())
            .collect();
        ids.iter().filter_map(|id| members.remove(*id)).collect()
    }

    /// Remove the room's entry if it has no member left. Returns true when
    /// it did (the node may stop receiving the room).
    pub fn drop_if_empty(&self, room: RoomId) -> bool {
        let mut shard = self.rooms.shard(room).write().expect("hub shard");
        if shard.get(&room).is_some_and(|m| m.is_empty()) {
            shard.remove(&room);
            crate::metrics::metrics().rooms.dec();
            return true;
        }
        false
    }

    /// Whether `conn` is in `room` here.
    pub fn contains(&self, room: RoomId, conn: ConnId) -> bool {
        let shard = self.rooms.shard(room).read().expect("hub shard");
        shard.get(&room).is_some_and(|m| m.contains(conn))
    }

    /// Remove a connection from a room. Returns true when the room has no
    /// local member left (the node may stop receiving it).
    pub fn leave(&self, room: RoomId, conn: ConnId) -> bool {
        let mut shard = self.rooms.shard(room).write().expect("hub shard");
        let Some(members) = shard.get_mut(&room) else {
            return false;
        };
        if members.remove(conn).is_none() {
            return false;
        }
        if members.is_empty() {
            shard.remove(&room);
            crate::metrics::metrics().rooms.dec();
            return true;
        }
        false
    }

    /// How many local connections are in `room`.
    pub fn member_count(&self, room: RoomId) -> usize {
        let shard = self.rooms.shard(room).read().expect("hub shard");
        shard.get(&room).map_or(0, |m| m.len())
    }

    /// Every local connection in `room`.
    pub fn members(&self, room: RoomId) -> Vec<ConnHandle> {
        let shard = self.rooms.shard(room).read().expect("hub shard");
        shard
            .get(&room)
            .map(|m| m.members().cloned().collect())
            .unwrap_or_default()
    }

    pub fn has_members(&self, room: RoomId) -> bool {
        self.rooms
            .shard(room)
            .read()
            .expect("hub shard")
            .get(&room)
            .is_some_and(|m| !m.is_empty())
    }

    /// The rooms with at least one local member.
    pub fn rooms(&self) -> Vec<RoomId> {
        let mut rooms = Vec::new();
        for shard in self.rooms.shards() {
            rooms.extend(shard.read().expect("hub shard").keys().copied());
        }
        rooms
    }

    /// Rooms with at least one local member.
    pub fn room_count(&self) -> usize {
        self.rooms
            .shards()
            .map(|s| s.read().expect("hub shard").len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{ConnKey, NodeId};
    use shared::server_frame::UserPublic;

    fn presence(room: i64, frame: &str, to: Audience) -> Broadcast {
        Broadcast {
            room: RoomId(room),
            frame: TextFrame::new(frame.to_string()),
            seq: None,
            to,
            kind: "user_joined",
        }
    }

    fn message(room: i64, seq: i64) -> Broadcast {
        Broadcast {
            room: RoomId(room),
            frame: format!("m{seq}").into(),
            seq: Some(seq),
            to: Audience::All,
            kind: "message",
        }
    }

    fn conn(
        id: u64,
        user: i64,
        queue: usize,
    ) -> (ConnHandle, crate::conn::send_queue::QueueReader) {
        let u = UserPublic {
            id: UserId(user),
            username: format!("u{user}"),
            nickname: "n".into(),
        };
        ConnHandle::new(
            ConnKey {
                node: NodeId("n".into()),
                conn: ConnId(id),
            },
            u,
            queue,
        )
    }

    #[test]
    fn first_join_and_last_leave_are_reported_and_empty_rooms_vanish() {
        let hub = Hub::default();
        let (a, _ra) = conn(1, 1, 4);
        let (b, _rb) = conn(2, 2, 4);
        assert!(hub.join(RoomId(7), &a));
        assert!(!hub.join(RoomId(7), &b));
        assert_eq!(hub.room_count(), 1);
        assert!(!hub.leave(RoomId(7), a.id()));
        assert!(!hub.leave(RoomId(7), a.id()), "leaving twice is a no-op");
        assert!(hub.leave(RoomId(7), b.id()));
        assert_eq!(hub.room_count(), 0);
        assert!(!hub.has_members(RoomId(7)));
    }

    #[test]
    fn taken_connections_get_no_broadcast_and_the_entry_waits_for_its_cleanup() {
        let hub = Hub::default();
        let (a, mut ra) = conn(1, 1, 4);
        let (b, _rb) = conn(2, 2, 4);
        hub.join(RoomId(3), &a);
        hub.join(RoomId(3), &b);
        let taken = hub.take(RoomId(3), |c| c.user().id == UserId(1));
        assert_eq!(taken.iter().map(|c| c.id()).collect::<Vec<_>>(), [a.id()]);
        assert!(!hub.contains(RoomId(3), a.id()));
        hub.broadcast(presence(3, "after", Audience::All));
        assert!(ra.try_recv().is_err(), "taken out before the broadcast");
        assert_eq!(hub.take(RoomId(3), |_| true).len(), 1);
        assert!(!hub.has_members(RoomId(3)));
        assert!(
            !hub.join(RoomId(3), &a),
            "the emptied entry is still subscribed: re-joining must not subscribe again"
        );
        assert!(!hub.drop_if_empty(RoomId(3)), "not empty any more");
        hub.take(RoomId(3), |_| true);
        assert!(hub.drop_if_empty(RoomId(3)));
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn broadcast_reaches_members_of_that_room_only() {
        let hub = Hub::default();
        let (a, mut ra) = conn(1, 1, 4);
        let (b, mut rb) = conn(2, 2, 4);
        let (c, mut rc) = conn(3, 3, 4);
        hub.join(RoomId(1), &a);
        hub.join(RoomId(1), &b);
        hub.join(RoomId(65), &c); // same shard as room 1
        let d = hub.broadcast(presence(1, "hello", Audience::AllBut(b.id())));
        assert_eq!(d, Delivery { queued: 1, slow: 0 });
        assert!(
            matches!(ra.try_recv().unwrap(), Outbound::Presence { frame: f, .. } if f == "hello")
        );
        assert!(rb.try_recv().is_err());
        assert!(rc.try_recv().is_err());
    }

    #[test]
    fn a_broadcast_about_a_user_skips_each_of_their_connections() {
        let hub = Hub::default();
        let (phone, mut r_phone) = conn(1, 1, 4);
        let (laptop, mut r_laptop) = conn(2, 1, 4);
        let (other, mut r_other) = conn(3, 2, 4);
        for c in [&phone, &laptop, &other] {
            hub.join(RoomId(5), c);
        }
        let d = hub.broadcast(presence(5, "typing", Audience::AllButUser(UserId(1))));
        assert_eq!(d, Delivery { queued: 1, slow: 0 });
        assert!(r_other.try_recv().is_ok());
        assert!(r_phone.try_recv().is_err());
        assert!(r_laptop.try_recv().is_err());
    }

    #[test]
    fn a_full_member_is_reported_slow_and_others_still_get_it() {
        let hub = Hub::default();
        let (a, _ra) = conn(1, 1, 1);
        let (b, mut rb) = conn(2, 2, 8);
        hub.join(RoomId(1), &a);
        hub.join(RoomId(1), &b);
        hub.broadcast(presence(1, "1", Audience::All));
        let d = hub.broadcast(presence(1, "2", Audience::All));
        assert_eq!(d, Delivery { queued: 1, slow: 1 });
        assert!(a.is_closing());
        assert!(matches!(rb.try_recv().unwrap(), Outbound::Presence { frame: f, .. } if f == "1"));
        assert!(matches!(rb.try_recv().unwrap(), Outbound::Presence { frame: f, .. } if f == "2"));
    }

    /// Run `test` on a worker: in a `LocalSet`, where the fan-out task can run.
    async fn on_a_worker(test: impl std::future::Future<Output = ()>) {
        tokio::task::LocalSet::new().run_until(test).await
    }

    /// The next item queued for a connection, within 5 s.
    async fn next(rx: &mut crate::conn::send_queue::QueueReader) -> Outbound {
        let item = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv());
        item.await
            .expect("delivered")
            .expect("an item, not the end")
    }

    fn seq_of(item: Outbound) -> i64 {
        match item {
            Outbound::Message { seq, .. } => seq,
            other => panic!("not a message: {other:?}"),
        }
    }

    /// On a worker with a fan-out task, a broadcast is handed over, not
    /// delivered by the caller; the task delivers it to the members the
    /// room still has when it runs and had when it was handed over: one
    /// taken out meanwhile gets nothing, and so does one that joined since.
    #[tokio::test]
    async fn a_worker_delivers_to_the_members_there_both_at_hand_over_and_when_it_runs() {
        on_a_worker(async {
            let hub = Hub::default();
            hub.attach_worker();
            let (a, mut ra) = conn(1, 1, 8);
            let (b, mut rb) = conn(2, 2, 8);
            hub.join(RoomId(1), &a);
            hub.join(RoomId(1), &b);
            let here = hub.broadcast(message(1, 1));
            assert_eq!(here, Delivery::default(), "handed to the worker");
            assert!(ra.try_recv().is_err(), "not delivered yet");
            hub.take(RoomId(1), |c| c.id() == b.id());
            let (late, mut rlate) = conn(3, 3, 8);
            hub.join(RoomId(1), &late);
            assert_eq!(seq_of(next(&mut ra).await), 1);
            assert!(rb.try_recv().is_err(), "taken out before the worker ran");
            assert!(
                rlate.try_recv().is_err(),
                "joined after the hand-over: not for it"
            );
            hub.broadcast(message(1, 2));
            hub.broadcast(message(1, 3));
            for seq in [2, 3] {
                assert_eq!(seq_of(next(&mut ra).await), seq, "in order");
                assert_eq!(seq_of(rlate.try_recv().unwrap()), seq);
            }
        })
        .await;
    }

    /// The answer to a client's own send stays behind the room events
    /// handed to its worker before it.
    #[tokio::test]
    async fn an_answer_pushed_in_order_stays_behind_earlier_broadcasts() {
        on_a_worker(async {
            let hub = Hub::default();
            hub.attach_worker();
            let (a, mut ra) = conn(1, 1, 8);
            hub.join(RoomId(1), &a);
            hub.broadcast(presence(1, "left", Audience::All));
            assert_eq!(
                hub.push_in_order(&a, Outbound::Frame("answer".into())),
                Enqueued::Queued
            );
            assert!(ra.try_recv().is_err(), "both with the worker");
            assert!(
                matches!(next(&mut ra).await, Outbound::Presence { frame, .. } if frame == "left")
            );
            assert!(matches!(ra.try_recv().unwrap(), Outbound::Frame(f) if f == "answer"));
        })
        .await;
    }

    /// Under load a worker's turns come at most one per pace, so the
    /// broadcasts of that time leave together; after a quiet spell (or
    /// behind a client's answer alone) a broadcast goes at once. In paused
    /// time: the clock moves only when the worker sleeps.
    #[tokio::test(start_paused = true)]
    async fn turns_are_paced_under_load_and_immediate_when_quiet() {
        on_a_worker(async {
            let hub = Hub::default();
            hub.attach_worker();
            let (a, mut ra) = conn(1, 1, 64);
            hub.join(RoomId(1), &a);
            let waited = |since: tokio::time::Instant| since.elapsed();

            let start = tokio::time::Instant::now();
            hub.broadcast(message(1, 1));
            assert_eq!(seq_of(ra.recv().await.expect("an item")), 1);
            assert!(
                waited(start) < std::time::Duration::from_millis(1),
                "first: at once"
            );

            let start = tokio::time::Instant::now();
            hub.broadcast(message(1, 2));
            hub.broadcast(message(1, 3));
            assert_eq!(seq_of(ra.recv().await.expect("an item")), 2);
            assert_eq!(seq_of(ra.try_recv().unwrap()), 3, "in the same turn");
            assert!(
                waited(start) >= std::time::Duration::from_millis(7),
                "paced"
            );

            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            hub.push_in_order(&a, Outbound::Frame("answer".into()));
            assert!(matches!(ra.recv().await, Some(Outbound::Frame(_))));
            let start = tokio::time::Instant::now();
            hub.broadcast(message(1, 4));
            assert_eq!(seq_of(ra.recv().await.expect("an item")), 4);
            assert!(
                waited(start) < std::time::Duration::from_millis(1),
                "an answer alone does not hold back the next broadcast"
            );
        })
        .await;
    }

    /// Each worker's members get the broadcast from that worker's task;
    /// a thread without one is delivered to by the caller.
    #[test]
    fn each_worker_fans_out_to_its_own_members() {
        let hub = Arc::new(Hub::default());
        let (joined_tx, joined_rx) = std::sync::mpsc::channel();
        let worker = {
            let hub = Arc::clone(&hub);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(on_a_worker(async move {
                    hub.attach_worker();
                    let (a, mut ra) = conn(1, 1, 8);
                    hub.join(RoomId(1), &a);
                    joined_tx.send(a.worker()).unwrap();
                    let got = seq_of(next(&mut ra).await);
                    assert_eq!(got, 7, "from this worker's task");
                }))
            })
        };
        let worker_id = joined_rx.recv().unwrap();
        let (b, mut rb) = conn(2, 2, 8);
        assert_ne!(b.worker(), worker_id);
        hub.join(RoomId(1), &b);
        let here = hub.broadcast(message(1, 7));
        assert_eq!(here, Delivery { queued: 1, slow: 0 }, "b, directly");
        assert_eq!(seq_of(rb.try_recv().unwrap()), 7);
        worker.join().expect("the worker thread got it");
    }

    /// A worker that falls a whole queue behind cannot give its members
    /// everything in order: they are closed as slow consumers.
    #[tokio::test]
    async fn a_worker_too_far_behind_closes_its_members_as_slow() {
        on_a_worker(async {
            let hub = Hub::default();
            hub.attach_worker();
            let (a, _ra) = conn(1, 1, 8);
            hub.join(RoomId(1), &a);
            for seq in 0..WORKER_QUEUE as i64 {
                assert_eq!(hub.broadcast(message(1, seq)), Delivery::default());
            }
            assert!(!a.is_closing());
            let d = hub.broadcast(message(1, WORKER_QUEUE as i64));
            assert_eq!(d, Delivery { queued: 0, slow: 1 });
            assert!(a.is_closing());
        })
        .await;
    }
}
