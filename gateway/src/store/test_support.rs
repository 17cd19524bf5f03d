//! Test-only helpers: a migrated [`Store`] per backend under test. Always a
//! fresh temp-file SQLite database (several pool connections, so locking and
//! transactions are real); plus PostgreSQL when `TEST_DATABASE_URL` is set,
//! each test in its own throwaway schema so tests can run in parallel on
//! one database. And the fixtures the store's tests open with: users and
//! rooms whose details the test does not look at.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, Database};

use shared::ids::{RoomId, UserId};

use super::{Store, UserRecord};

pub(super) struct TestDb {
    pub store: Store,
    pub label: &'static str,
    /// What `store` was connected with.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// Drops the PostgreSQL schema (the SQLite temp dir goes with `self`).
    pub async fn cleanup(self) {
        if let Some((url, schema)) = &self.pg {
            let _ = self.store.db.clone().close().await;
            let admin = Database::connect(url.as_str()).await.unwrap();
            admin
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .unwrap();
        }
    }
}

/// Current time truncated to milliseconds, as the gateway passes it.
pub(super) fn now_ms() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::milliseconds(1))
        .unwrap()
}

/// A user named `name` (nickname `name` too, password hash "h"), created
/// now.
pub(super) async fn user(s: &Store, name: &str) -> UserRecord {
    s.create_user(name, "h", name, now_ms()).await.unwrap()
}

/// A [`user`] for each of `names`, created in that order.
pub(super) async fn users<const N: usize>(s: &Store, names: [&str; N]) -> [UserRecord; N] {
    let mut out = Vec::with_capacity(N);
    for name in names {
        out.push(user(s, name).await);
    }
    out.try_into().unwrap()
}

/// A public room `name`, without description, created now by `owner`, who
/// is its 'owner' member.
pub(super) async fn room(s: &Store, name: &str, owner: UserId) -> RoomId {
    s.create_room_with_owner(name, "", false, owner, now_ms())
        .await
        .unwrap()
        .id
}

/// Two users, "ann" and "bo", and a public room "r" that ann owns; bo is
/// not a member (yet).
pub(super) async fn ann_bo_and_a_room(s: &Store) -> (UserRecord, UserRecord, RoomId) {
    let ann = user(s, "ann").await;
    let bo = user(s, "bo").await;
    let room = room(s, "r", ann.id).await;
    (ann, bo, room)
}

/// [`ann_bo_and_a_room`], with bo joined as a 'member': an owner and a
/// member of a room.
pub(super) async fn ann_and_bo_in_a_room(s: &Store) -> (UserRecord, UserRecord, RoomId) {
    let (ann, bo, room) = ann_bo_and_a_room(s).await;
    s.add_member(room, bo.id, "member", now_ms()).await.unwrap();
    (ann, bo, room)
}

/// `n` messages, "m0", "m1" and on, by `user` in `room`, sent now one after
/// the other.
pub(super) async fn send_messages(s: &Store, room: RoomId, user: UserId, n: usize) {
    for i in 0..n {
        let content = format!("m{i}");
        s.insert_message(room, user, &content, None, now_ms())
            .await
            .unwrap();
    }
}

/// `task(s, i)` for each `i` in `0..n`, on clones of `s`, all at once: each
/// on its own tokio task, so on several threads under a multi-threaded
/// runtime. Their results, in the order of `i`.
pub(super) async fn at_once<T, F>(s: &Store, n: usize, task: impl Fn(Store, usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks = (0..n).map(|i| tokio::spawn(task(s.clone(), i)));
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// One migrated store per available backend, each with `max_connections`.
pub(super) async fn backends(max_connections: u32) -> Vec<TestDb> {
    let out = empty_backends(max_connections).await;
    for t in &out {
        t.store.migrate().await.unwrap();
    }
    out
}

/// Like [`backends`], but nothing migrated yet.
pub(super) async fn empty_backends(max_connections: u32) -> Vec<TestDb> {
    let mut out = Vec::new();

    let dir = tempfile::tempdir().unwrap();
    // A missing parent directory: `connect` must create it.
    let url = format!("sqlite://{}/nested/chat.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url, max_connections).await.unwrap();
    out.push(TestDb {
        store,
        label: "sqlite",
        url,
        _dir: Some(dir),
        pg: None,
    });

    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "store_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = Database::connect(url.as_str()).await.unwrap();
        admin
            .execute_unprepared(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options[search_path]={schema}");
        let store = Store::connect(&scoped, max_connections).await.unwrap();
        assert_eq!(store.backend_name(), "postgres");
        out.push(TestDb {
            store,
            label: "postgres",
            url: scoped,
            _dir: None,
            pg: Some((url, schema)),
        });
    }
    out
}
