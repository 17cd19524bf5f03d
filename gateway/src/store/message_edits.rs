//! Editing and deleting a stored message. Each change is an event row in
//! `messages` that takes the room's next `seq` (so a client resuming with
//! `since_seq` learns of it, in order, exactly once), and is applied to the
//! message's own row in the same transaction (so the history shows the
//! message as it now is). A deleted message stays as a tombstone: its row
//! keeps its `seq`, its content is emptied, and so is the content of the
//! edit events before it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};
use shared::ids::{MessageId, RoomId, UserId};
use std::collections::BTreeMap;

use super::entities::message;
use super::{MessageRecord, Store, StoreError};

/// What a row of `messages` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A chat message.
    Message,
    /// An edit of the row's `target`.
    Edited,
    /// The deletion of the row's `target`.
    Deleted,
}

impl MessageKind {
    pub(super) fn from_column(kind: &str) -> Self {
        match kind {
            "edited" => MessageKind::Edited,
            "deleted" => MessageKind::Deleted,
            _ => MessageKind::Message,
        }
    }

    fn column(self) -> &'static str {
        match self {
            MessageKind::Message => "message",
            MessageKind::Edited => "edited",
            MessageKind::Deleted => "deleted",
        }
    }
}

/// A change stored: the message as it now is, and the event row.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageChange {
    pub message: MessageRecord,
    pub event: MessageRecord,
}

impl Store {
    /// The chat message `id` of `room` (deleted ones included), not an event row.
    pub async fn find_message(
        &self,
        room: RoomId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Ok(message::Entity::find_by_id(id.0)
            .filter(message::Column::RoomId.eq(room.0))
            .filter(message::Column::Kind.eq(MessageKind::Message.column()))
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// Replace the content of message `id` of `room`, by `editor`, at
    /// `now`: the message gets `content` and `edited_at`, and an `edited`
    /// event takes the room's next seq. `NotFound` if there is no such
    /// message or it is deleted (also when a deletion won a race).
    pub async fn edit_message(
        &self,
        room: RoomId,
        id: MessageId,
        editor: UserId,
        content: &str,
        now: DateTime<Utc>,
    ) -> Result<MessageChange, StoreError> {
        let txn = self.begin_write().await?;
        let change = change_in(&txn, room, id, editor, MessageKind::Edited, content, now).await;
        super::commit_if_ok(txn, change).await
    }

    /// Delete message `id` of `room`, by `by`, at `now`: it becomes a
    /// tombstone, its edits lose their content, and a `deleted` event takes
    /// the room's next seq. `NotFound` if there is no such message or it
    /// is deleted already.
    pub async fn delete_message(
        &self,
        room: RoomId,
        id: MessageId,
        by: UserId,
        now: DateTime<Utc>,
    ) -> Result<MessageChange, StoreError> {
        let txn = self.begin_write().await?;
        let change = change_in(&txn, room, id, by, MessageKind::Deleted, "", now).await;
        super::commit_if_ok(txn, change).await
    }
}

async fn change_in(
    txn: &DatabaseTransaction,
    room: RoomId,
    id: MessageId,
    by: UserId,
    kind: MessageKind,
    content: &str,
    now: DateTime<Utc>,
) -> Result<MessageChange, StoreError> {
    // The room's row first, as every message insert takes it: one lock
    // order for all writers (see `bump_seqs`).
    let mut next = BTreeMap::from([(room, 1)]);
    super::messages::bump_seqs(txn, &mut next).await?;
    let seq = next[&room];
    let mut update = message::Entity::update_many()
        .col_expr(message::Column::Content, Expr::value(content.to_owned()));
    update = match kind {
        MessageKind::Deleted => update.col_expr(message::Column::DeletedAt, Expr::value(now)),
        _ => update.col_expr(message::Column::EditedAt, Expr::value(now)),
    };
    let updated = update
        .filter(message::Column::Id.eq(id.0))
        .filter(message::Column::RoomId.eq(room.0))
        .filter(message::Column::Kind.eq(MessageKind::Message.column()))
        .filter(message::Column::DeletedAt.is_null())
        .exec(txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(StoreError::NotFound);
    }
    if kind == MessageKind::Deleted {
        message::Entity::update_many()
            .col_expr(message::Column::Content, Expr::value(String::new()))
            .filter(message::Column::TargetId.eq(id.0))
            .exec(txn)
            .await?;
    }
    let event = message::Entity::insert(message::ActiveModel {
        id: NotSet,
        room_id: Set(room.0),
        user_id: Set(by.0),
        seq: Set(seq),
        content: Set(content.to_owned()),
        client_msg_id: Set(None),
        created_at: Set(now),
        kind: Set(kind.column().to_owned()),
        target_id: Set(Some(id.0)),
        edited_at: Set(None),
        deleted_at: Set(None),
    })
    .exec_with_returning(txn)
    .await?;
    let message = message::Entity::find_by_id(id.0)
        .one(txn)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(MessageChange {
        message: message.into(),
        event: event.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{backends, now_ms, room, user};
    use super::*;

    #[tokio::test]
    async fn changes_take_their_own_seq_and_leave_the_message_as_it_now_is() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let ann = user(s, "ann").await;
            let room = room(s, "r", ann.id).await;
            let first = s
                .insert_message(room, ann.id, "one", None, now)
                .await
                .unwrap();
            let second = s
                .insert_message(room, ann.id, "two", None, now)
                .await
                .unwrap();
            let edit = s
                .edit_message(room, first.id, ann.id, "one!", now)
                .await
                .unwrap();
            assert_eq!((edit.event.seq, edit.event.kind), (3, MessageKind::Edited));
            assert_eq!(edit.event.target, Some(first.id));
            assert_eq!(
                (edit.message.seq, edit.message.content.as_str()),
                (1, "one!")
            );
            assert_eq!(edit.message.edited_at, Some(now));
            let gone = s.delete_message(room, first.id, ann.id, now).await.unwrap();
            assert_eq!((gone.event.seq, gone.event.kind), (4, MessageKind::Deleted));
            assert!(gone.message.deleted_at.is_some() && gone.message.content.is_empty());
            // Gone is gone: no second deletion, no edit.
            for again in [
                s.delete_message(room, first.id, ann.id, now).await,
                s.edit_message(room, first.id, ann.id, "x", now).await,
                // An event row is not a message to change.
                s.edit_message(room, edit.event.id, ann.id, "x", now).await,
            ] {
                assert!(matches!(again, Err(StoreError::NotFound)), "{}", t.label);
            }
            // The stream has every seq once; the edit lost its content with
            // the deletion; the history pages hold messages only.
            let stream = s.messages_after_seq(room, 0, 10).await.unwrap();
            let kinds: Vec<_> = stream.iter().map(|m| (m.seq, m.kind)).collect();
            assert_eq!(
                kinds,
                vec![
                    (1, MessageKind::Message),
                    (2, MessageKind::Message),
                    (3, MessageKind::Edited),
                    (4, MessageKind::Deleted),
                ]
            );
            assert_eq!(stream[2].content, "");
            let page = s.messages_before(room, None, 10).await.unwrap();
            let ids: Vec<_> = page.iter().map(|m| m.id).collect();
            assert_eq!(ids, vec![second.id, first.id], "{}", t.label);
            assert_eq!(s.find_room(room).await.unwrap().unwrap().last_seq, 4);
            // A message is found in its own room only.
            assert!(
                s.find_message(RoomId(room.0 + 100), second.id)
                    .await
                    .unwrap()
                    .is_none()
            );
            t.cleanup().await;
        }
    }
}
