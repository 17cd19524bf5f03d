//! Group commit of chat messages: the messages that arrive while a
//! transaction is being written are stored together in the next one.
//!
//! Why: a transaction's fixed costs (its commit, and on SQLite the hand-over
//! of the connection from sqlx's thread) are paid once per batch instead of
//! once per message; see `Store::insert_messages`. A caller still gets its
//! answer only after the commit that holds its message, so an acknowledged
//! message is stored, as before.
//!
//! Writers: one for SQLite (it takes one writer at a time anyway), a few for
//! PostgreSQL, each taking the rooms `room % writers` so that a room's
//! messages keep their arrival order. A batch that fails as a whole (one
//! message's `client_msg_id` is taken, its room is gone, ...) is rolled back
//! and its messages stored one by one, so each gets its own answer.

use super::{MessageRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use shared::ids::{RoomId, UserId};
use tokio::sync::{mpsc, oneshot};

/// At most this many messages per transaction.
const MAX_BATCH: usize = 64;
/// Messages waiting per writer before senders wait.
const QUEUE: usize = 1024;

/// A message to store.
pub struct NewMessage {
    pub room: RoomId,
    pub user: UserId,
    pub content: String,
    pub client_msg_id: Option<String>,
    pub now: DateTime<Utc>,
}

struct Pending {
    message: NewMessage,
    answer: oneshot::Sender<Result<MessageRecord, StoreError>>,
}

#[derive(Debug)]
pub(super) struct GroupCommit {
    writers: Vec<mpsc::Sender<Pending>>,
}

impl GroupCommit {
    /// Start the writers on the current runtime; they stop when the last
    /// clone of the store that holds this is dropped.
    ///
    /// SQLite's writer runs on a thread of its own: its transactions run on
    /// the calling thread (`store/sqlite_messages.rs`) and would stall
    /// whatever else shares a runtime thread with it.
    pub(super) fn start(store: Store, writers: usize) -> Self {
        let sqlite = store.backend_name() == "sqlite";
        let writers = (0..writers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let writer = write(store.clone(), rx);
                if sqlite {
                    std::thread::Builder::new()
                        .name("message-writer".into())
                        .spawn(move || {
                            tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .expect("a runtime for the message writer")
                                .block_on(writer)
                        })
                        // At start: a process that cannot start a thread
                        // cannot start its workers either.
                        .expect("start the message writer thread");
                } else {
                    tokio::spawn(writer);
                }
                tx
            })
            .collect();
        GroupCommit { writers }
    }

    pub(super) async fn insert(&self, message: NewMessage) -> Result<MessageRecord, StoreError> {
        let writer = &self.writers[message.room.0 as usize % self.writers.len()];
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the message writer stopped".into());
        writer
            .send(Pending { message, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn write(store: Store, mut queue: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut checkpoints = Checkpoints::new(&store);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        checkpoints.after_a_commit(&store);
        crate::metrics::metrics()
            .db_message_batch
            .observe(batch.len() as f64);
        if batch.len() > 1 {
            // Rooms in ascending order (a stable sort keeps each room's
            // arrival order): every transaction then takes its rooms' row
            // locks in the same order, and batches of several nodes cannot
            // deadlock on PostgreSQL.
            batch.sort_by_key(|p| p.message.room.0);
            let messages: Vec<&NewMessage> = batch.iter().map(|p| &p.message).collect();
            if let Ok(stored) = store.insert_messages(&messages).await {
                for (pending, record) in batch.drain(..).zip(stored) {
                    let _ = pending.answer.send(Ok(record));
                }
                continue;
            }
        }
        for pending in batch.drain(..) {
            let stored = store.insert_messages(&[&pending.message]).await;
            let _ = pending.answer.send(stored.map(|mut one| one.remove(0)));
        }
    }
}

/// SQLite's WAL checkpoints, off the writer's path. By default the
/// connection whose commit takes the WAL past 1,000 pages copies them into
/// the database and fsyncs it, inside that commit: the message writer
/// stalled for tens of milliseconds every few batches (persist benchmark,
/// BENCHMARKS.md: 4,500 → 6,300 messages/s without it). The writer's
/// connections now checkpoint only past 10,000 pages (a backstop), and a
/// passive checkpoint runs at most once a second on another pooled
/// connection, which in WAL mode does not block the writer.
struct Checkpoints {
    running: Option<tokio::task::JoinHandle<()>>,
    last: std::time::Instant,
    sqlite: bool,
}

impl Checkpoints {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    fn new(store: &Store) -> Self {
        Checkpoints {
            running: None,
            last: std::time::Instant::now(),
            sqlite: store.backend_name() == "sqlite",
        }
    }

    fn after_a_commit(&mut self, store: &Store) {
        if !self.sqlite
            || self.last.elapsed() < Self::EVERY
            || self.running.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        self.last = std::time::Instant::now();
        let db = store.db.clone();
        self.running = Some(tokio::spawn(async move {
            use sea_orm::ConnectionTrait;
            if let Err(e) = db
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at_once, backends, now_ms, user};
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_inserts_share_transactions_and_keep_every_rule() {
        for t in backends(5).await {
            let s = t.store.clone().with_group_commit();
            let u = user(&s, "gc").await;
            let r2 = s
                .create_room("second", "", false, Some(u.id), now_ms())
                .await
                .unwrap()
                .id;
            let taken = s
                .insert_message(RoomId(1), u.id, "first", Some("taken"), now_ms())
                .await
                .unwrap();
            assert_eq!(taken.seq, 1);
            // 40 sends to two rooms, one reusing a taken client_msg_id and
            // one to a room that does not exist, all at once: they land in
            // shared transactions, and the two bad ones must not take the
            // others down with them.
            let sends = at_once(&s, 42, |s, i| async move {
                let (room, id) = match i {
                    40 => (RoomId(1), Some("taken".to_owned())),
                    41 => (RoomId(404), None),
                    i if i % 2 == 0 => (RoomId(1), Some(format!("c{i}"))),
                    _ => (r2, None),
                };
                s.insert_message(room, u.id, &format!("m{i}"), id.as_deref(), now_ms())
                    .await
            })
            .await;
            let mut seqs: std::collections::HashMap<RoomId, Vec<i64>> = Default::default();
            for (i, sent) in sends.into_iter().enumerate() {
                match (i, sent) {
                    (40, sent) => assert!(matches!(sent, Err(StoreError::Conflict)), "{sent:?}"),
                    (41, sent) => assert!(matches!(sent, Err(StoreError::NotFound)), "{sent:?}"),
                    (i, Ok(m)) => {
                        assert_eq!(m.content, format!("m{i}"), "{}", t.label);
                        seqs.entry(m.room_id).or_default().push(m.seq);
                    }
                    (i, Err(e)) => panic!("{}: send {i}: {e:?}", t.label),
                }
            }
            for (room, mut got) in seqs {
                got.sort_unstable();
                let first = if room == RoomId(1) { 2 } else { 1 };
                let want: Vec<i64> = (first..first + 20).collect();
                assert_eq!(got, want, "{}: room {room} gap-free", t.label);
            }
            let stored = s.messages_after_seq(RoomId(1), 0, 100).await.unwrap();
            assert_eq!(stored.len(), 21, "{}: nothing else stored", t.label);
            t.cleanup().await;
        }
    }

    /// One UPDATE per room and one multi-row INSERT: messages of rooms
    /// interleaved in a batch still get their room's next seqs in their
    /// order, and each answer is its own message's.
    #[tokio::test]
    async fn a_batch_of_several_rooms_keeps_each_rooms_order() {
        for t in backends(2).await {
            let s = &t.store;
            let u = user(s, "gc3").await;
            let r2 = s
                .create_room("other", "", false, Some(u.id), now_ms())
                .await
                .unwrap()
                .id;
            s.insert_message(r2, u.id, "before", None, now_ms())
                .await
                .unwrap();
            let message = |room, content: &str| NewMessage {
                room,
                user: u.id,
                content: content.into(),
                client_msg_id: Some(format!("id-{content}")),
                now: now_ms(),
            };
            let batch = [
                message(r2, "b2"),
                message(RoomId(1), "a1"),
                message(r2, "b3"),
                message(RoomId(1), "a2"),
                message(RoomId(1), "a3"),
            ];
            let refs: Vec<&NewMessage> = batch.iter().collect();
            let stored = s.insert_messages(&refs).await.unwrap();
            let got: Vec<(RoomId, i64, &str, Option<&str>)> = stored
                .iter()
                .map(|m| {
                    (
                        m.room_id,
                        m.seq,
                        m.content.as_str(),
                        m.client_msg_id.as_deref(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                [
                    (r2, 2, "b2", Some("id-b2")),
                    (RoomId(1), 1, "a1", Some("id-a1")),
                    (r2, 3, "b3", Some("id-b3")),
                    (RoomId(1), 2, "a2", Some("id-a2")),
                    (RoomId(1), 3, "a3", Some("id-a3")),
                ],
                "{}",
                t.label
            );
            assert_eq!(s.find_room(r2).await.unwrap().unwrap().last_seq, 3);
            assert_eq!(s.find_room(RoomId(1)).await.unwrap().unwrap().last_seq, 3);
            let page = s.messages_after_seq(r2, 0, 10).await.unwrap();
            let contents: Vec<&str> = page.iter().map(|m| m.content.as_str()).collect();
            assert_eq!(contents, ["before", "b2", "b3"], "{}", t.label);
            t.cleanup().await;
        }
    }

    /// The message writer leaves checkpoints to a passive one, at most once
    /// a second on another connection; they must still happen: the
    /// messages reach the database file, not only the WAL (whose own
    /// checkpoint waits for 10,000 pages).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_off_the_writers_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chat.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let plain = Store::connect(&url, 3).await.unwrap();
        plain.migrate().await.unwrap();
        let s = plain.clone().with_group_commit();
        let u = user(&s, "wal").await;
        let db_bytes = || std::fs::metadata(&file).unwrap().len();
        let before = db_bytes();
        let content = "x".repeat(2000);
        at_once(&s, 300, |s, _| {
            let content = content.clone();
            async move {
                s.insert_message(RoomId(1), u.id, &content, None, now_ms())
                    .await
                    .unwrap()
            }
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        // The first commit a second after the last checkpoint starts one.
        s.insert_message(RoomId(1), u.id, "one more", None, now_ms())
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while db_bytes() < before + 300 * 2000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file is still {} bytes ({} before)",
                db_bytes(),
                before
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_batch_is_all_or_nothing() {
        for t in backends(2).await {
            let s = &t.store;
            let u = user(s, "gc2").await;
            let message = |content: &str, id: Option<&str>| NewMessage {
                room: RoomId(1),
                user: u.id,
                content: content.into(),
                client_msg_id: id.map(str::to_owned),
                now: now_ms(),
            };
            let (a, b) = (message("a", Some("x")), message("b", None));
            let stored = s.insert_messages(&[&a, &b]).await.unwrap();
            assert_eq!((stored[0].seq, stored[1].seq), (1, 2), "{}", t.label);
            let (c, dup) = (message("c", None), message("dup", Some("x")));
            let err = s.insert_messages(&[&c, &dup]).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict), "{}: {err:?}", t.label);
            let all = s.messages_after_seq(RoomId(1), 0, 10).await.unwrap();
            assert_eq!(all.len(), 2, "{}: the failed batch left nothing", t.label);
            assert_eq!(s.find_room(RoomId(1)).await.unwrap().unwrap().last_seq, 2);
            t.cleanup().await;
        }
    }
}
