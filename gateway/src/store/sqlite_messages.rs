//! A batch of messages stored on SQLite through its C API (rusqlite) on the
//! store's own writer connection, instead of through sea-orm statements.
//!
//! Why: sqlx runs each SQLite connection on a thread of its own, and every
//! statement is a round trip to that thread (two wake-ups, more for the rows
//! of a `RETURNING`). A batch was four statements or more, and in the 1×500
//! profile these hand-offs were 14 % of all the gateway's samples
//! (BENCHMARKS.md, session 8). Here the connection is taken out of sqlx's
//! thread once per batch (`lock_handle`: one round trip) and the
//! transaction runs on the caller's thread, with prepared statements and no
//! row channel.
//!
//! The connection is the writer pool's, the one every other SQLite write
//! uses, so these writes still queue with the others in order rather than
//! meeting them on SQLite's lock (whose busy handler sleeps; see
//! `Store::writer`). The caller's thread is busy for the whole transaction:
//! the group-commit writer has a thread of its own for that reason.

use std::collections::BTreeMap;
use std::time::Instant;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sea_orm::DatabaseConnection;
use shared::ids::{MessageId, RoomId};

use super::{MessageRecord, NewMessage, StoreError};

/// Move each room's `last_seq` on by its count of messages; its messages
/// take `last_seq - count + 1 ..= last_seq`, in order.
const BUMP: &str = "UPDATE rooms SET last_seq = last_seq + ?1 WHERE id = ?2 RETURNING last_seq";
const INSERT: &str = "INSERT INTO messages (room_id, user_id, seq, content, client_msg_id, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id";

/// Store `messages` in one transaction on `writer`'s connection, each under
/// its room's next seq, in order; all or none. `NotFound` if a room or a
/// user does not exist, `Conflict` if a `client_msg_id` is taken.
pub(super) async fn insert_messages(
    writer: &DatabaseConnection,
    messages: &[&NewMessage],
) -> Result<Vec<MessageRecord>, StoreError> {
    let unavailable = |e: sea_orm::sqlx::Error| StoreError::Unavailable(e.to_string());
    let mut conn = writer
        .get_sqlite_connection_pool()
        .acquire()
        .await
        .map_err(unavailable)?;
    let mut handle = conn.lock_handle().await.map_err(unavailable)?;
    // SAFETY: sqlx's worker thread does not touch the connection until
    // `handle` drops, and `db` drops first (below). A connection made by
    // `from_handle` does not close the handle when dropped, and the
    // statements prepared on it are finalized before it drops.
    let mut db = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }
        .map_err(store_error)?;
    let stored = insert_in(&mut db, messages);
    drop(db);
    drop(handle);
    stored
}

fn insert_in(
    db: &mut rusqlite::Connection,
    messages: &[&NewMessage],
) -> Result<Vec<MessageRecord>, StoreError> {
    let metrics = &crate::metrics::metrics().db_statement_seconds;
    let (bump_seconds, insert_seconds) = (
        metrics.with_label_values(&["update", "rooms"]),
        metrics.with_label_values(&["insert", "messages"]),
    );
    // Dropped without a commit (an error below), it rolls back.
    let txn = db
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    let mut next_seq: BTreeMap<RoomId, i64> = BTreeMap::new();
    for m in messages {
        *next_seq.entry(m.room).or_default() += 1;
    }
    let mut stored = Vec::with_capacity(messages.len());
    {
        // Rooms in ascending order, as on PostgreSQL (one order of locks).
        let mut bump = txn.prepare(BUMP).map_err(store_error)?;
        for (room, next) in next_seq.iter_mut() {
            let started = Instant::now();
            let last: Option<i64> = bump
                .query_row(params![*next, room.0], |row| row.get(0))
                .optional()
                .map_err(store_error)?;
            bump_seconds.observe(started.elapsed().as_secs_f64());
            *next = last.ok_or(StoreError::NotFound)? - *next + 1;
        }
        let mut insert = txn.prepare(INSERT).map_err(store_error)?;
        for m in messages {
            let next = next_seq.get_mut(&m.room).expect("counted above");
            let seq = *next;
            *next += 1;
            let started = Instant::now();
            let id: i64 = insert
                .query_row(
                    params![
                        m.room.0,
                        m.user.0,
                        seq,
                        m.content,
                        m.client_msg_id,
                        sqlite_timestamp(&m.now),
                    ],
                    |row| row.get(0),
                )
                .map_err(store_error)?;
            insert_seconds.observe(started.elapsed().as_secs_f64());
            stored.push(MessageRecord {
                id: MessageId(id),
                room_id: m.room,
                user_id: m.user,
                seq,
                content: m.content.clone(),
                client_msg_id: m.client_msg_id.clone(),
                created_at: m.now,
                kind: super::MessageKind::Message,
                target: None,
                edited_at: None,
                deleted_at: None,
            });
        }
    }
    txn.commit().map_err(store_error)?;
    Ok(stored)
}

/// A timestamp as sqlx writes a `DateTime<Utc>` to SQLite (what sea-orm
/// binds), so rows stored here read and sort like every other row.
fn sqlite_timestamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// rusqlite's errors mapped as `StoreError::from` maps sqlx's: a unique key
/// taken → `Conflict`, a foreign key missing (room or user gone) →
/// `NotFound`, busy / locked / I/O → `Unavailable`.
fn store_error(err: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match &err {
        rusqlite::Error::SqliteFailure(e, _) => match e.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                StoreError::Conflict
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound,
            code if super::error::sqlite_code_is_unavailable(code) => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Other(err.to_string()),
        },
        _ => StoreError::Other(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{now_ms, user};
    use super::super::{Store, entities};
    use super::*;
    use sea_orm::{ConnectionTrait, EntityTrait, Statement};
    use shared::ids::UserId;

    async fn sqlite() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/chat.db?mode=rwc", dir.path().display());
        let s = Store::connect(&url, 2).await.unwrap();
        s.migrate().await.unwrap();
        (s, dir)
    }

    fn message(room: RoomId, user: UserId, content: &str, id: Option<&str>) -> NewMessage {
        NewMessage {
            room,
            user,
            content: content.into(),
            client_msg_id: id.map(str::to_owned),
            now: now_ms(),
        }
    }

    /// A row stored here reads back through sea-orm as it was written, and
    /// its timestamp is the same text sea-orm itself writes: history pages
    /// and retention compare these as text.
    #[tokio::test]
    async fn rows_read_back_like_sea_orms_own() {
        let (s, _dir) = sqlite().await;
        let u = user(&s, "raw").await;
        let direct = message(RoomId(1), u.id, "direct", Some("d-1"));
        let stored = insert_messages(&s.writer, &[&direct]).await.unwrap();
        let read = entities::message::Entity::find_by_id(stored[0].id.0)
            .one(&s.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(MessageRecord::from(read), stored[0]);
        // sea-orm's own write of the same instant, compared as stored text.
        let text = |sql: &str| {
            let db = s.db.clone();
            let sql = sql.to_owned();
            async move {
                db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                    .await
                    .unwrap()
                    .unwrap()
                    .try_get_by_index::<String>(0)
                    .unwrap()
            }
        };
        let room = s
            .create_room("other", "", false, Some(u.id), direct.now)
            .await
            .unwrap();
        let ours = text(&format!(
            "SELECT created_at FROM messages WHERE id = {}",
            stored[0].id.0
        ))
        .await;
        let theirs = text(&format!(
            "SELECT created_at FROM rooms WHERE id = {}",
            room.id.0
        ))
        .await;
        assert_eq!(ours, theirs);
    }

    /// Errors come back mapped, the failed batch leaves nothing behind, and
    /// the connection goes back to sqlx usable (no transaction left open).
    #[tokio::test]
    async fn a_failed_batch_rolls_back_and_the_connection_stays_usable() {
        let (s, _dir) = sqlite().await;
        let u = user(&s, "raw2").await;
        let first = message(RoomId(1), u.id, "a", Some("taken"));
        insert_messages(&s.writer, &[&first]).await.unwrap();
        for (batch, want) in [
            (
                vec![
                    message(RoomId(1), u.id, "b", None),
                    message(RoomId(1), u.id, "dup", Some("taken")),
                ],
                "conflict",
            ),
            (
                vec![
                    message(RoomId(1), u.id, "c", None),
                    message(RoomId(404), u.id, "gone", None),
                ],
                "room",
            ),
            (vec![message(RoomId(1), UserId(404), "who", None)], "user"),
        ] {
            let refs: Vec<&NewMessage> = batch.iter().collect();
            let err = insert_messages(&s.writer, &refs).await.unwrap_err();
            match want {
                "conflict" => assert!(matches!(err, StoreError::Conflict), "{err:?}"),
                _ => assert!(matches!(err, StoreError::NotFound), "{want}: {err:?}"),
            }
        }
        let all = s.messages_after_seq(RoomId(1), 0, 10).await.unwrap();
        assert_eq!(all.len(), 1, "the failed batches left nothing");
        assert_eq!(s.find_room(RoomId(1)).await.unwrap().unwrap().last_seq, 1);
        // sqlx's own writes on the same connection still work, and so does
        // the next batch.
        user(&s, "after").await;
        let next = message(RoomId(1), u.id, "next", None);
        let stored = insert_messages(&s.writer, &[&next]).await.unwrap();
        assert_eq!(stored[0].seq, 2);
    }
}
