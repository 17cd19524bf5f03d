//! Messages: storing a message under the room's next sequence number,
//! newest-first history pages, and oldest-first pages by seq for resuming a
//! room's stream.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use shared::ids::{MessageId, RoomId, UserId};
use std::collections::{BTreeMap, HashMap};

use super::entities::{message, room};
use super::{MessageKind, MessageRecord, Store, StoreError, fk_violation_is_not_found};

impl From<message::Model> for MessageRecord {
    fn from(m: message::Model) -> Self {
        MessageRecord {
            id: MessageId(m.id),
            room_id: RoomId(m.room_id),
            user_id: UserId(m.user_id),
            seq: m.seq,
            content: m.content,
            client_msg_id: m.client_msg_id,
            created_at: m.created_at,
            kind: MessageKind::from_column(&m.kind),
            target: m.target_id.map(MessageId),
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
        }
    }
}

impl Store {
    /// The sender's message with this `client_msg_id`, if any.
    pub async fn message_by_client_msg_id(
        &self,
        user: UserId,
        client_msg_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Ok(message::Entity::find()
            .filter(message::Column::UserId.eq(user.0))
            .filter(message::Column::ClientMsgId.eq(client_msg_id))
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// Forget a message's `client_msg_id` (its deduplication window is over),
    /// so the sender may use the id again.
    pub async fn release_client_msg_id(&self, id: MessageId) -> Result<(), StoreError> {
        message::Entity::update_many()
            .col_expr(
                message::Column::ClientMsgId,
                Expr::value(Option::<String>::None),
            )
            .filter(message::Column::Id.eq(id.0))
            .exec(&self.writer)
            .await?;
        Ok(())
    }

    /// Stores a message under the room's next sequence number, in one
    /// transaction: `UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?
    /// RETURNING last_seq`, then the insert. The UPDATE's row lock
    /// (PostgreSQL) / the write lock taken by `BEGIN IMMEDIATE` (SQLite)
    /// serialises concurrent writers per room, so seqs are 1, 2, 3, …
    /// without gaps or duplicates. `StoreError::NotFound` if the room (or
    /// the user) does not exist.
    ///
    /// With group commit on, the insert shares a transaction with the
    /// messages that arrive meanwhile; the answer comes after its commit.
    pub async fn insert_message(
        &self,
        room: RoomId,
        user: UserId,
        content: &str,
        client_msg_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError> {
        match &self.group_commit {
            Some(batcher) => {
                batcher
                    .insert(super::NewMessage {
                        room,
                        user,
                        content: content.to_owned(),
                        client_msg_id: client_msg_id.map(str::to_owned),
                        now,
                    })
                    .await
            }
            None => {
                let message = super::NewMessage {
                    room,
                    user,
                    content: content.to_owned(),
                    client_msg_id: client_msg_id.map(str::to_owned),
                    now,
                };
                let mut stored = self.insert_messages(&[&message]).await?;
                Ok(stored.pop().expect("one stored per message"))
            }
        }
    }

    /// Several messages in one transaction, each under its room's next seq,
    /// in order; all or none. However many there are, that is one `UPDATE`
    /// per room (its `last_seq` moved by the room's count) and one
    /// multi-row `INSERT`. On SQLite the transaction runs through its C API
    /// on the writer's connection (`store/sqlite_messages.rs`): a statement
    /// through sqlx's SQLite driver is a round trip to its thread.
    pub(super) async fn insert_messages(
        &self,
        messages: &[&super::NewMessage],
    ) -> Result<Vec<MessageRecord>, StoreError> {
        if self.writer.get_database_backend() == DbBackend::Sqlite {
            return super::sqlite_messages::insert_messages(&self.writer, messages).await;
        }
        let txn = self.begin_write().await?;
        let stored = insert_in(&txn, messages).await;
        super::commit_if_ok(txn, stored).await
    }

    /// Newest-first page of the room's messages with id < `before` (or the
    /// newest if `None`), at most `limit`: chat messages as they now are
    /// (tombstones included), not the edit and delete events.
    pub async fn messages_before(
        &self,
        room: RoomId,
        before: Option<MessageId>,
        limit: u64,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = message::Entity::find()
            .filter(message::Column::RoomId.eq(room.0))
            .filter(message::Column::Kind.eq("message"));
        if let Some(before) = before {
            query = query.filter(message::Column::Id.lt(before.0));
        }
        let page = query
            .order_by_desc(message::Column::Id)
            .limit(limit.min(i64::MAX as u64))
            .all(&self.db)
            .await?;
        Ok(page.into_iter().map(Into::into).collect())
    }

    /// The room's rows with seq > `after_seq`, oldest first (ascending
    /// seq), at most `limit`: what a client that has seen up to `after_seq`
    /// missed, edit and delete events included. Served by the unique (room_id, seq) index.
    pub async fn messages_after_seq(
        &self,
        room: RoomId,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page = message::Entity::find()
            .filter(message::Column::RoomId.eq(room.0))
            .filter(message::Column::Seq.gt(after_seq))
            .order_by_asc(message::Column::Seq)
            .limit(limit.min(i64::MAX as u64))
            .all(&self.db)
            .await?;
        Ok(page.into_iter().map(Into::into).collect())
    }
}

async fn insert_in(
    txn: &DatabaseTransaction,
    messages: &[&super::NewMessage],
) -> Result<Vec<MessageRecord>, StoreError> {
    // Each room's messages, counted.
    let mut next_seq: BTreeMap<RoomId, i64> = BTreeMap::new();
    for m in messages {
        *next_seq.entry(m.room).or_default() += 1;
    }
    bump_seqs(txn, &mut next_seq).await?;
    let mut seqs = Vec::with_capacity(messages.len());
    let rows = messages.iter().map(|m| {
        let next = next_seq.get_mut(&m.room).expect("counted above");
        let seq = *next;
        *next += 1;
        seqs.push((m.room, seq));
        message::ActiveModel {
            id: NotSet,
            room_id: Set(m.room.0),
            user_id: Set(m.user.0),
            seq: Set(seq),
            content: Set(m.content.clone()),
            client_msg_id: Set(m.client_msg_id.clone()),
            created_at: Set(m.now),
            kind: NotSet,
            target_id: NotSet,
            edited_at: NotSet,
            deleted_at: NotSet,
        }
    });
    let rows: Vec<_> = rows.collect();
    let stored = message::Entity::insert_many(rows)
        .exec_with_returning(txn)
        .await
        .map_err(fk_violation_is_not_found)?;
    // RETURNING's row order is not promised (SQLite says so): match by seq.
    let mut by_seq: HashMap<(RoomId, i64), MessageRecord> = stored
        .into_iter()
        .map(|m| ((RoomId(m.room_id), m.seq), m.into()))
        .collect();
    seqs.iter()
        .map(|key| {
            by_seq
                .remove(key)
                .ok_or_else(|| StoreError::Unavailable("a stored message was not returned".into()))
        })
        .collect()
}

/// Move each room's `last_seq` on by its count (the value in `counts`),
/// and leave there the first seq its messages take: they take
/// `last_seq - count + 1 ..= last_seq`, in order. `NotFound` if a room is gone.
///
/// One statement per room in ascending room order, so that transactions of
/// several writers and nodes take rooms' row locks in one order and cannot
/// deadlock (an `IN` list's scan order is the planner's choice).
pub(super) async fn bump_seqs(
    txn: &DatabaseTransaction,
    counts: &mut BTreeMap<RoomId, i64>,
) -> Result<(), StoreError> {
    // Scoped: sea-query's blanket `ExprTrait` would shadow `Ord::min` & co.
    use sea_orm::sea_query::ExprTrait;
    for (room, count) in counts.iter_mut() {
        let bump = Query::update()
            .table(room::Entity)
            .value(
                room::Column::LastSeq,
                Expr::col(room::Column::LastSeq).add(*count),
            )
            .and_where(room::Column::Id.eq(room.0))
            .returning(Query::returning().column(room::Column::LastSeq))
            .to_owned();
        let row = txn.query_one(&bump).await?.ok_or(StoreError::NotFound)?;
        *count = row.try_get::<i64>("", "last_seq")? - *count + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at_once, backends, now_ms, user};
    use super::*;

    /// A second public room, "two", without owner.
    async fn second_room(s: &Store) -> RoomId {
        s.create_room("two", "", false, None, now_ms())
            .await
            .unwrap()
            .id
    }

    /// Messages "m0" to "m6" by a new user in room 1, each followed by one
    /// in a second room (returned too), so that pages have another room's
    /// rows to skip.
    async fn seven_between_noise(s: &Store) -> (Vec<MessageRecord>, RoomId) {
        let u = user(s, "kim").await;
        let r2 = second_room(s).await;
        let mut sent = Vec::new();
        for i in 0..7 {
            sent.push(
                s.insert_message(RoomId(1), u.id, &format!("m{i}"), None, now_ms())
                    .await
                    .unwrap(),
            );
            s.insert_message(r2, u.id, "noise", None, now_ms())
                .await
                .unwrap();
        }
        (sent, r2)
    }

    #[tokio::test]
    async fn seqs_are_per_room() {
        for t in backends(4).await {
            let s = &t.store;
            let u = user(s, "ivy").await;
            let r2 = second_room(s).await;
            let now = now_ms();
            let a1 = s
                .insert_message(RoomId(1), u.id, "a1", Some("c-1"), now)
                .await
                .unwrap();
            assert_eq!((a1.room_id, a1.user_id, a1.seq), (RoomId(1), u.id, 1));
            assert_eq!(
                (a1.content.as_str(), a1.client_msg_id.as_deref()),
                ("a1", Some("c-1"))
            );
            assert_eq!(a1.created_at, now, "{}: timestamp round-trip", t.label);
            let b1 = s.insert_message(r2, u.id, "b1", None, now).await.unwrap();
            let a2 = s
                .insert_message(RoomId(1), u.id, "a2", None, now)
                .await
                .unwrap();
            let a3 = s
                .insert_message(RoomId(1), u.id, "a3", None, now)
                .await
                .unwrap();
            let b2 = s.insert_message(r2, u.id, "b2", None, now).await.unwrap();
            assert_eq!(
                [a2.seq, a3.seq, b1.seq, b2.seq],
                [2, 3, 1, 2],
                "{}",
                t.label
            );
            assert_eq!(s.find_room(RoomId(1)).await.unwrap().unwrap().last_seq, 3);

            // Missing room / user: NotFound, and nothing is consumed.
            let err = s
                .insert_message(RoomId(404), u.id, "x", None, now)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::NotFound), "{err:?}");
            let err = s
                .insert_message(RoomId(1), UserId(404), "x", None, now)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::NotFound), "{err:?}");
            assert_eq!(
                s.insert_message(RoomId(1), u.id, "a4", None, now)
                    .await
                    .unwrap()
                    .seq,
                4
            );
            t.cleanup().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_inserts_get_distinct_seqs() {
        for t in backends(5).await {
            let s = &t.store;
            let u = user(s, "jack").await;
            let mut seqs = at_once(s, 20, |s, i| async move {
                let content = format!("m{i}");
                let sent = s.insert_message(RoomId(1), u.id, &content, None, now_ms());
                sent.await.unwrap().seq
            })
            .await;
            seqs.sort_unstable();
            assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "{}", t.label);
            assert_eq!(s.find_room(RoomId(1)).await.unwrap().unwrap().last_seq, 20);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn history_pages() {
        for t in backends(2).await {
            let s = &t.store;
            let (sent, _) = seven_between_noise(s).await;
            let ids: Vec<_> = sent.iter().map(|m| m.id).collect();
            let page1 = s.messages_before(RoomId(1), None, 3).await.unwrap();
            let got: Vec<_> = page1.iter().map(|m| m.content.as_str()).collect();
            assert_eq!(got, ["m6", "m5", "m4"], "{}", t.label);
            let page2 = s
                .messages_before(RoomId(1), Some(page1[2].id), 3)
                .await
                .unwrap();
            assert_eq!(page2.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 3, 2]);
            let page3 = s
                .messages_before(RoomId(1), Some(page2[2].id), 3)
                .await
                .unwrap();
            assert_eq!(page3.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[0]]);
            assert!(
                s.messages_before(RoomId(1), Some(ids[0]), 3)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                s.messages_before(RoomId(1), None, 0)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                s.messages_before(RoomId(404), None, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn pages_after_seq() {
        for t in backends(2).await {
            let s = &t.store;
            let (sent, r2) = seven_between_noise(s).await;
            let seqs = |page: &[MessageRecord]| page.iter().map(|m| m.seq).collect::<Vec<_>>();
            let first = s.messages_after_seq(RoomId(1), 0, 3).await.unwrap();
            assert_eq!(first, sent[..3].to_vec(), "{}", t.label);
            let rest = s.messages_after_seq(RoomId(1), 3, 10).await.unwrap();
            assert_eq!(seqs(&rest), [4, 5, 6, 7], "{}", t.label);
            assert!(rest.iter().all(|m| m.room_id == RoomId(1)));
            assert_eq!(
                seqs(&s.messages_after_seq(RoomId(1), 5, 1).await.unwrap()),
                [6]
            );
            assert_eq!(
                seqs(&s.messages_after_seq(RoomId(1), -1, 2).await.unwrap()),
                [1, 2]
            );
            assert!(
                s.messages_after_seq(RoomId(1), 7, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                s.messages_after_seq(RoomId(1), 0, 0)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                s.messages_after_seq(RoomId(404), 0, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(seqs(&s.messages_after_seq(r2, 6, 10).await.unwrap()), [7]);
            t.cleanup().await;
        }
    }
}
