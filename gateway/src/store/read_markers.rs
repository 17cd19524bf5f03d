//! Read markers: each member's `last_read_seq` in a room, which only moves
//! forward and never past the room's newest seq, and the unread counts that
//! `GET /api/rooms` shows next to it (`rooms::visible_rooms`).

use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, JoinType, QueryFilter, QuerySelect};
use shared::ids::{RoomId, UserId};

use super::entities::{message, room, room_member};
use super::{Store, StoreError};

/// Unread messages are counted among the this many after the marker at
/// most: a count reads that many index entries whatever the backlog, so
/// listing 64 rooms stays cheap (a client shows "999+").
pub const UNREAD_COUNT_MAX: i64 = 1000;

/// A member's read marker after [`Store::mark_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    /// The stored `last_read_seq`.
    pub seq: i64,
    /// Whether this call moved it.
    pub moved: bool,
}

impl Store {
    /// Move `user`'s marker in `room` to `seq`, capped at the room's newest
    /// seq; a marker already there or further stays. `StoreError::NotFound`
    /// if the room does not exist or `user` is not a member.
    pub async fn mark_read(
        &self,
        room: RoomId,
        user: UserId,
        seq: i64,
    ) -> Result<ReadMark, StoreError> {
        let newest: i64 = room::Entity::find_by_id(room.0)
            .select_only()
            .column(room::Column::LastSeq)
            .into_tuple()
            .one(&self.db)
            .await?
            .ok_or(StoreError::NotFound)?;
        let target = seq.clamp(0, newest);
        let updated = room_member::Entity::update_many()
            .col_expr(room_member::Column::LastReadSeq, Expr::value(target))
            .filter(room_member::Column::RoomId.eq(room.0))
            .filter(room_member::Column::UserId.eq(user.0))
            .filter(room_member::Column::LastReadSeq.lt(target))
            .exec(&self.writer)
            .await?;
        if updated.rows_affected > 0 {
            return Ok(ReadMark {
                seq: target,
                moved: true,
            });
        }
        let current: i64 = room_member::Entity::find_by_id((room.0, user.0))
            .select_only()
            .column(room_member::Column::LastReadSeq)
            .into_tuple()
            .one(&self.writer)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(ReadMark {
            seq: current,
            moved: false,
        })
    }
}

/// The viewer's unread messages in `rooms.id`, for `visible_rooms`: those
/// after the viewer's marker that others wrote and nobody deleted (edit
/// and delete events are not messages), among the
/// [`UNREAD_COUNT_MAX`] after it (0 when the viewer is not a member).
/// Served by the (room_id, user_id) key of `room_members` and, alone, by
/// the partial index `idx_messages_unread` of `messages`, which holds
/// exactly the countable rows with their sender: its condition is written
/// here literally (not as bound values), so that both databases can prove
/// the index applies.
pub(super) fn unread_count_of_room(viewer: UserId) -> Expr {
    // Scoped: sea-query's blanket `ExprTrait` would shadow `Ord::min` & co.
    use sea_orm::sea_query::ExprTrait;
    let (m, rm) = (Alias::new("m"), Alias::new("rm"));
    let marker = || Expr::col((rm.clone(), room_member::Column::LastReadSeq));
    let seq = || Expr::col((m.clone(), message::Column::Seq));
    let count = Query::select()
        .expr(seq().count())
        .from_as(message::Entity, m.clone())
        .join_as(
            JoinType::InnerJoin,
            room_member::Entity,
            rm.clone(),
            Condition::all()
                .add(
                    Expr::col((rm.clone(), room_member::Column::RoomId))
                        .equals((m.clone(), message::Column::RoomId)),
                )
                .add(Expr::col((rm.clone(), room_member::Column::UserId)).eq(viewer.0)),
        )
        .and_where(
            Expr::col((m.clone(), message::Column::RoomId))
                .equals((room::Entity, room::Column::Id)),
        )
        .and_where(seq().gt(marker()))
        .and_where(seq().lte(marker().add(UNREAD_COUNT_MAX)))
        .and_where(Expr::col((m.clone(), message::Column::UserId)).ne(viewer.0))
        .and_where(Expr::cust(r#""m"."kind" = 'message'"#))
        .and_where(Expr::col((m.clone(), message::Column::DeletedAt)).is_null())
        .to_owned();
    Expr::SubQuery(None, Box::new(count.into()))
}

/// The viewer's `column` of its `room_members` row for `rooms.id` (NULL
/// when the viewer is not a member).
pub(super) fn membership_column_of_room(viewer: UserId, column: room_member::Column) -> Expr {
    use sea_orm::sea_query::ExprTrait;
    let value = Query::select()
        .column((room_member::Entity, column))
        .from(room_member::Entity)
        .and_where(
            Expr::col((room_member::Entity, room_member::Column::RoomId))
                .equals((room::Entity, room::Column::Id)),
        )
        .and_where(Expr::col((room_member::Entity, room_member::Column::UserId)).eq(viewer.0))
        .to_owned();
    Expr::SubQuery(None, Box::new(value.into()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        ann_and_bo_in_a_room, ann_bo_and_a_room, backends, now_ms, send_messages, user,
    };
    use super::*;

    #[tokio::test]
    async fn a_marker_moves_forward_only_and_never_past_the_newest_message() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let (ann, bo, room) = ann_bo_and_a_room(s).await;
            send_messages(s, room, ann.id, 5).await;
            // A member who joins now has read what came before.
            s.add_member(room, bo.id, "member", now).await.unwrap();
            let mark = |seq| s.mark_read(room, bo.id, seq);
            assert_eq!(
                mark(3).await.unwrap(),
                ReadMark {
                    seq: 5,
                    moved: false
                },
                "{}",
                t.label
            );
            s.insert_message(room, ann.id, "m5", None, now)
                .await
                .unwrap();
            s.insert_message(room, ann.id, "m6", None, now)
                .await
                .unwrap();
            assert_eq!(
                mark(6).await.unwrap(),
                ReadMark {
                    seq: 6,
                    moved: true
                }
            );
            assert_eq!(
                mark(4).await.unwrap(),
                ReadMark {
                    seq: 6,
                    moved: false
                },
                "never back"
            );
            assert_eq!(
                mark(99).await.unwrap(),
                ReadMark {
                    seq: 7,
                    moved: true
                },
                "capped"
            );
            assert_eq!(
                mark(99).await.unwrap(),
                ReadMark {
                    seq: 7,
                    moved: false
                }
            );
            let stranger = user(s, "cy").await;
            assert!(matches!(
                s.mark_read(room, stranger.id, 1).await,
                Err(StoreError::NotFound)
            ));
            assert!(matches!(
                s.mark_read(RoomId(999), bo.id, 1).await,
                Err(StoreError::NotFound)
            ));
            t.cleanup().await;
        }
    }

    /// The unread counts of `GET /api/rooms` read the partial index alone
    /// (SQLite's plan; PostgreSQL's planner picks by its statistics, so
    /// an empty table says nothing there): no row read per message.
    #[tokio::test]
    async fn unread_counts_read_only_their_index() {
        use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};
        for t in backends(1).await {
            if t.label != "sqlite" {
                t.cleanup().await;
                continue;
            }
            let query = Store::visible_rooms_query(UserId(1), None, 100).build(DbBackend::Sqlite);
            let explain = Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", query.sql),
                query.values.map(|v| v.0).unwrap_or_default(),
            );
            let plan: Vec<String> = t
                .store
                .db
                .query_all_raw(explain)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String>("", "detail").unwrap())
                .collect();
            assert!(
                plan.iter()
                    .any(|d| d.contains("USING COVERING INDEX idx_messages_unread")),
                "{plan:#?}"
            );
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn unread_counts_others_messages_after_the_marker_up_to_the_cap() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let (ann, bo, room) = ann_and_bo_in_a_room(s).await;
            send_messages(s, room, ann.id, 4).await;
            s.insert_message(room, bo.id, "mine", None, now)
                .await
                .unwrap();
            let listed = |viewer| async move {
                let page = s.visible_rooms(viewer, None, 10).await.unwrap();
                let l = page.into_iter().find(|l| l.room.id == room).unwrap();
                (l.role, l.last_read_seq, l.unread_count)
            };
            assert_eq!(
                listed(bo.id).await,
                (Some("member".into()), Some(0), Some(4)),
                "{}: his own message is not unread",
                t.label
            );
            s.mark_read(room, bo.id, 2).await.unwrap();
            assert_eq!(
                listed(bo.id).await,
                (Some("member".into()), Some(2), Some(2))
            );
            // Seqs 3 and 4 are ann's: an edit of 3 (seq 6) is no message,
            // and 4 deleted (seq 7) is not counted any more.
            let unread = s.messages_after_seq(room, 2, 2).await.unwrap();
            s.edit_message(room, unread[0].id, ann.id, "a2!", now)
                .await
                .unwrap();
            s.delete_message(room, unread[1].id, ann.id, now)
                .await
                .unwrap();
            assert_eq!(
                listed(bo.id).await,
                (Some("member".into()), Some(2), Some(1)),
                "{}",
                t.label
            );
            let cy = user(s, "cy").await;
            assert_eq!(listed(cy.id).await, (None, None, None), "not a member");
            t.cleanup().await;
        }
    }
}
