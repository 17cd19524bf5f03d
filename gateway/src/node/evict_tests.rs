//! A node on the in-memory backends and a temp-file SQLite store, driven
//! directly: the orderings these tests need (an eviction while the room's
//! lock is busy, a kick between admission and the hub join) are hard to hit
//! from outside, and must hold every time.

use super::*;
use crate::bus::memory::MemoryBus;
use crate::config::PresenceSettings;
use crate::presence::memory::MemoryPresence;
use crate::store::Store;
use crate::user_conns::memory::MemoryUserConns;
use shared::bus_envelope::BusEnvelope;
use shared::ids::{ConnKey, MessageId, NodeId};
use shared::server_frame::{MessageData, UserPublic};
use tokio::sync::mpsc;

struct Fixture {
    node: Arc<Node>,
    store: Store,
    room: RoomId,
    guest: UserPublic,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let now = crate::clock::now();
    let owner = store.create_user("owner", "h", "Owner", now).await.unwrap();
    let guest = store.create_user("guest", "h", "Guest", now).await.unwrap();
    let room = store
        .create_room_with_owner("r", "", true, owner.id, now)
        .await
        .unwrap()
        .id;
    store
        .add_member(room, guest.id, "member", now)
        .await
        .unwrap();
    // The router is driven by hand; published envelopes just pile up here.
    let (tx, rx) = mpsc::channel(1024);
    std::mem::forget(rx);
    let node = Arc::new(Node::new(
        NodeId("n".into()),
        Arc::new(MemoryBus::new(tx)),
        Arc::new(MemoryPresence::default()),
        Arc::new(MemoryUserConns::default()),
        store.clone(),
        1000,
        PresenceSettings::default(),
    ));
    let guest = UserPublic {
        id: guest.id,
        username: guest.username,
        nickname: guest.nickname,
    };
    Fixture {
        node,
        store,
        room,
        guest,
        _dir: dir,
    }
}

fn connection(f: &Fixture) -> (ConnHandle, crate::conn::send_queue::QueueReader) {
    connection_of(f, f.guest.clone())
}

fn connection_of(
    f: &Fixture,
    user: UserPublic,
) -> (ConnHandle, crate::conn::send_queue::QueueReader) {
    let key = ConnKey {
        node: f.node.id().clone(),
        conn: f.node.next_conn_id(),
    };
    ConnHandle::new(key, user, 64)
}

/// The guest's connection, in the room, with what entering queued drained.
async fn guest_in_room(f: &Fixture) -> (ConnHandle, crate::conn::send_queue::QueueReader) {
    let (conn, mut rx) = connection(f);
    f.node.enter(&conn, f.room, 0).await.unwrap();
    drain(&mut rx);
    (conn, rx)
}

fn drain(rx: &mut crate::conn::send_queue::QueueReader) -> Vec<Outbound> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn left_room_reason(item: &Outbound) -> Option<String> {
    let Outbound::Frame(f) = item else {
        return None;
    };
    let v: serde_json::Value = serde_json::from_str(f).unwrap();
    (v["type"] == "left_room").then(|| v["data"]["reason"].as_str().unwrap().to_owned())
}

/// The reasons of the `left_room` frames among `queued`, in order.
fn left_room_reasons(queued: &[Outbound]) -> Vec<String> {
    queued.iter().filter_map(left_room_reason).collect()
}

fn message(room: RoomId, seq: i64, user: &UserPublic) -> BusEvent {
    BusEvent::Message(MessageData {
        id: MessageId(seq),
        room_id: room,
        user_id: user.id,
        seq,
        content: "after the kick".into(),
        created_at: "2026-11-26T18:00:00.000Z".into(),
        user: user.clone(),
        client_msg_id: None,
        edited_at: None,
        deleted: false,
    })
}

#[tokio::test]
async fn a_message_after_the_eviction_never_reaches_the_evicted_connection() {
    let f = fixture().await;
    let (conn, mut rx) = guest_in_room(&f).await;
    // Someone else holds the room's lock (a join awaiting Redis, say): the
    // eviction must not wait for it before the next envelope is routed.
    let busy = f.node.room_locks.lock(f.room).await;
    let kick = BusEvent::Evict {
        user_id: f.guest.id,
        reason: LeaveReason::Kicked,
    };
    f.node
        .deliver(BusEnvelope::new(f.node.id().clone(), f.room, kick));
    f.node.deliver(BusEnvelope::new(
        f.node.id().clone(),
        f.room,
        message(f.room, 1, &f.guest),
    ));
    let queued = drain(&mut rx);
    assert!(
        !queued.iter().any(|o| matches!(o, Outbound::Message { .. })),
        "the message routed after the kick was queued for the kicked connection: {queued:?}"
    );
    assert!(matches!(queued.first(), Some(Outbound::Untrack { room }) if *room == f.room));
    assert_eq!(left_room_reasons(&queued), ["kicked"]);
    assert!(!conn.in_room(f.room), "it may not send to the room either");
    // The slow part finishes once the lock is free.
    drop(busy);
    for _ in 0..100 {
        if f.node.hub.room_count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(f.node.hub.room_count(), 0, "the emptied room is dropped");
    let online = f.node.online_users(f.room, 10).await.unwrap();
    assert!(
        online.users.is_empty(),
        "presence removed: {:?}",
        online.users
    );
}

#[tokio::test]
async fn the_same_eviction_twice_tells_the_connection_once() {
    let f = fixture().await;
    let (_conn, mut rx) = guest_in_room(&f).await;
    assert_eq!(
        f.node.evict_user(f.room, f.guest.id, LeaveReason::Kicked),
        1
    );
    assert_eq!(f.node.evict_room(f.room, LeaveReason::RoomDeleted), 0);
    assert_eq!(left_room_reasons(&drain(&mut rx)), ["kicked"]);
}

#[tokio::test]
async fn a_kick_between_admission_and_entering_is_not_missed() {
    let f = fixture().await;
    // Admission saw the membership; the kick committed right after it,
    // before the connection was in the hub, so its eviction found nothing.
    f.store.remove_member(f.room, f.guest.id).await.unwrap();
    let (conn, mut rx) = connection(&f);
    f.node.enter(&conn, f.room, 0).await.unwrap();
    assert!(!f.node.hub.contains(f.room, conn.id()), "still in the room");
    assert!(!conn.in_room(f.room));
    let queued = drain(&mut rx);
    assert_eq!(left_room_reasons(&queued), ["kicked"]);
    assert!(
        !queued
            .iter()
            .any(|o| matches!(o, Outbound::Snapshot { .. })),
        "no online_users of a room it is not in: {queued:?}"
    );
}

#[tokio::test]
async fn a_room_deleted_between_admission_and_entering_says_so() {
    let f = fixture().await;
    f.store.delete_room(f.room).await.unwrap();
    let (conn, mut rx) = connection(&f);
    f.node.enter(&conn, f.room, 0).await.unwrap();
    assert_eq!(left_room_reasons(&drain(&mut rx)), ["room_deleted"]);
}

/// Once the node serves the room and knows the member, another connection
/// of the member is admitted without SQL: here the membership row is gone
/// behind the node's back (no eviction published), and the node still
/// admits from what it knows. (A real removal always comes with an
/// eviction, the next test; and the cache trusts a read for
/// `entry_cache::TRUST` at most.)
#[tokio::test]
async fn a_known_member_enters_a_served_room_without_sql() {
    let f = fixture().await;
    let (_conn, _rx) = guest_in_room(&f).await;
    f.store.remove_member(f.room, f.guest.id).await.unwrap();
    assert_eq!(f.node.admit(f.guest.id, f.room).await, Ok(0));
    let (second, mut rx2) = connection(&f);
    f.node.enter(&second, f.room, 0).await.unwrap();
    assert!(
        f.node.hub.contains(f.room, second.id()),
        "re-check from the cache"
    );
    assert!(left_room_reasons(&drain(&mut rx2)).is_empty());
}

/// An eviction the node hears drops what it knew: the next admission asks
/// SQL, which refuses (the room is private).
#[tokio::test]
async fn an_eviction_heard_is_never_answered_from_what_the_node_knew() {
    let f = fixture().await;
    let (conn, mut rx) = connection(&f);
    let (stays, _rx_stays) = {
        // Another member keeps the room served after the guest is kicked.
        let now = crate::clock::now();
        let other = f
            .store
            .create_user("other", "h", "Other", now)
            .await
            .unwrap();
        f.store
            .add_member(f.room, other.id, "member", now)
            .await
            .unwrap();
        let public = UserPublic {
            id: other.id,
            username: other.username,
            nickname: other.nickname,
        };
        connection_of(&f, public)
    };
    f.node.enter(&stays, f.room, 0).await.unwrap();
    f.node.enter(&conn, f.room, 0).await.unwrap();
    drain(&mut rx);
    assert_eq!(f.node.admit(f.guest.id, f.room).await, Ok(0));
    f.store.remove_member(f.room, f.guest.id).await.unwrap();
    f.node.evict_user(f.room, f.guest.id, LeaveReason::Kicked);
    assert_eq!(
        f.node.admit(f.guest.id, f.room).await,
        Err(crate::admission::AdmitError::NotFound)
    );
    assert!(f.node.hub.contains(f.room, stays.id()));
}
