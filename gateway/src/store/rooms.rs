//! Rooms: creation (optionally together with the owner's membership),
//! lookup, the rooms a user may see with their member counts, updates and
//! deletion; plus a member's role and idempotent joins (member lists, role
//! changes and removal: `members.rs`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait, TryInsertResult,
};
use shared::ids::{RoomId, UserId};

use super::entities::{room, room_member};
use super::read_markers::{membership_column_of_room, unread_count_of_room};
use super::{RoomListing, RoomRecord, Store, StoreError, fk_violation_is_not_found};

/// Role of a room's creator in `room_members`.
const OWNER_ROLE: &str = "owner";
/// `rooms.kind` of a direct-message room (the others: 'room').
pub(super) const DM_KIND: &str = "dm";

/// A `rooms` row plus the columns `visible_rooms` computes: the member
/// count, and the viewer's role, read marker and unread count (NULL when the
/// viewer is not a member).
#[derive(Debug, FromQueryResult)]
struct RoomWithCount {
    #[sea_orm(nested)]
    room: room::Model,
    member_count: i64,
    role: Option<String>,
    last_read_seq: Option<i64>,
    unread_count: i64,
}

impl From<room::Model> for RoomRecord {
    fn from(m: room::Model) -> Self {
        RoomRecord {
            id: RoomId(m.id),
            name: m.name,
            description: m.description,
            is_private: m.is_private,
            owner_id: m.owner_id.map(UserId),
            last_seq: m.last_seq,
            created_at: m.created_at,
            is_dm: m.kind == DM_KIND,
        }
    }
}

impl Store {
    /// A new room (the caller records the owner's membership separately).
    pub async fn create_room(
        &self,
        name: &str,
        description: &str,
        is_private: bool,
        owner: Option<UserId>,
        now: DateTime<Utc>,
    ) -> Result<RoomRecord, StoreError> {
        let row = room::ActiveModel {
            name: Set(name.to_owned()),
            description: Set(description.to_owned()),
            is_private: Set(is_private),
            owner_id: Set(owner.map(|u| u.0)),
            last_seq: Set(0),
            created_at: Set(now),
            ..Default::default()
        };
        let model = room::Entity::insert(row)
            .exec_with_returning(&self.writer)
            .await
            .map_err(fk_violation_is_not_found)?;
        Ok(model.into())
    }

    /// A new room and its creator's 'owner' membership (joined at `now`),
    /// in one transaction: either both exist afterwards or neither does.
    /// `StoreError::NotFound` if the owner does not exist.
    pub async fn create_room_with_owner(
        &self,
        name: &str,
        description: &str,
        is_private: bool,
        owner: UserId,
        now: DateTime<Utc>,
    ) -> Result<RoomRecord, StoreError> {
        let row = room::ActiveModel {
            name: Set(name.to_owned()),
            description: Set(description.to_owned()),
            is_private: Set(is_private),
            owner_id: Set(Some(owner.0)),
            last_seq: Set(0),
            created_at: Set(now),
            ..Default::default()
        };
        let txn = self.writer.begin().await?;
        let created = insert_room_with_owner(&txn, row, owner, now).await;
        super::commit_if_ok(txn, created).await
    }

    /// How many rooms `owner` owns (for `limits.max_rooms_per_user`).
    pub async fn rooms_owned(&self, owner: UserId) -> Result<u64, StoreError> {
        Ok(room::Entity::find()
            .filter(room::Column::OwnerId.eq(owner.0))
            .count(&self.db)
            .await?)
    }

    pub async fn find_room(&self, id: RoomId) -> Result<Option<RoomRecord>, StoreError> {
        Ok(room::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// One page of the rooms `viewer` may see: every public room plus the
    /// private rooms `viewer` is a member of, ordered by id, with id >
    /// `after` (`None`: from the first room), at most `limit`, each with its
    /// member count and the viewer's membership (role, read marker, unread
    /// count). One query: visibility is an `EXISTS` on the membership's
    /// primary key and the rest correlated subqueries, served by the
    /// (room_id, user_id) primary key of `room_members` and, for the unread
    /// counts, at most `UNREAD_COUNT_MAX` entries per room of the partial
    /// index `idx_messages_unread`, read alone.
    pub async fn visible_rooms(
        &self,
        viewer: UserId,
        after: Option<RoomId>,
        limit: u64,
    ) -> Result<Vec<RoomListing>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page = Self::visible_rooms_query(viewer, after, limit)
            .into_model::<RoomWithCount>()
            .all(&self.db)
            .await?;
        Ok(page
            .into_iter()
            .map(|r| RoomListing {
                room: r.room.into(),
                member_count: u64::try_from(r.member_count).unwrap_or(0),
                unread_count: r
                    .last_read_seq
                    .is_some()
                    .then(|| u64::try_from(r.unread_count).unwrap_or(0)),
                role: r.role,
                last_read_seq: r.last_read_seq,
            })
            .collect())
    }

    /// The query behind [`Store::visible_rooms`] (its plan is tested).
    pub(super) fn visible_rooms_query(
        viewer: UserId,
        after: Option<RoomId>,
        limit: u64,
    ) -> sea_orm::Select<room::Entity> {
        let mut query = room::Entity::find()
            .expr_as(member_count_of_room(), "member_count")
            .expr_as(
                membership_column_of_room(viewer, room_member::Column::Role),
                "role",
            )
            .expr_as(
                membership_column_of_room(viewer, room_member::Column::LastReadSeq),
                "last_read_seq",
            )
            .expr_as(unread_count_of_room(viewer), "unread_count")
            .filter(
                Condition::any()
                    .add(room::Column::IsPrivate.eq(false))
                    .add(is_member_of_room(viewer)),
            );
        if let Some(after) = after {
            query = query.filter(room::Column::Id.gt(after.0));
        }
        query
            .order_by_asc(room::Column::Id)
            .limit(limit.min(i64::MAX as u64))
    }

    /// Changes the given fields (`None`: left as is) and returns the room as
    /// stored afterwards. `StoreError::NotFound` if the room does not exist.
    pub async fn update_room(
        &self,
        id: RoomId,
        name: Option<&str>,
        description: Option<&str>,
        is_private: Option<bool>,
    ) -> Result<RoomRecord, StoreError> {
        if name.is_none() && description.is_none() && is_private.is_none() {
            return self.find_room(id).await?.ok_or(StoreError::NotFound);
        }
        let mut update = room::Entity::update_many().filter(room::Column::Id.eq(id.0));
        if let Some(name) = name {
            update = update.col_expr(room::Column::Name, Expr::value(name));
        }
        if let Some(description) = description {
            update = update.col_expr(room::Column::Description, Expr::value(description));
        }
        if let Some(is_private) = is_private {
            update = update.col_expr(room::Column::IsPrivate, Expr::value(is_private));
        }
        let updated = update.exec_with_returning(&self.writer).await?;
        updated
            .into_iter()
            .next()
            .map(Into::into)
            .ok_or(StoreError::NotFound)
    }

    /// Deletes the room; its memberships and messages go with it (ON DELETE
    /// CASCADE). `StoreError::NotFound` if it does not exist. Policy (who
    /// may delete, keeping room 1 "general") is the caller's.
    pub async fn delete_room(&self, id: RoomId) -> Result<(), StoreError> {
        let deleted = room::Entity::delete_by_id(id.0).exec(&self.writer).await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Number of members of the room (0 for a room that does not exist).
    pub async fn member_count(&self, room: RoomId) -> Result<u64, StoreError> {
        Ok(room_member::Entity::find()
            .filter(room_member::Column::RoomId.eq(room.0))
            .count(&self.db)
            .await?)
    }

    /// The user's role in the room ('owner' | 'admin' | 'member'), `None`
    /// if not a member.
    pub async fn member_role(
        &self,
        room: RoomId,
        user: UserId,
    ) -> Result<Option<String>, StoreError> {
        let found = room_member::Entity::find_by_id((room.0, user.0))
            .one(&self.db)
            .await?;
        Ok(found.map(|m| m.role))
    }

    /// Idempotent join: inserts (room, user, role) unless the user already is
    /// a member (whose role is then left unchanged). Returns true when it
    /// inserted. Safe under concurrent duplicate calls (`ON CONFLICT DO
    /// NOTHING`). `StoreError::NotFound` if the room or user does not exist.
    /// A new member has read what the room holds so far (its read marker is
    /// the room's newest seq).
    pub async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let newest: i64 = room::Entity::find_by_id(room.0)
            .select_only()
            .column(room::Column::LastSeq)
            .into_tuple()
            .one(&self.writer)
            .await?
            .ok_or(StoreError::NotFound)?;
        let row = room_member::ActiveModel {
            room_id: Set(room.0),
            user_id: Set(user.0),
            role: Set(role.to_owned()),
            joined_at: Set(now),
            last_read_seq: Set(newest),
        };
        let result = room_member::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(&self.writer)
            .await
            .map_err(fk_violation_is_not_found)?;
        Ok(matches!(result, TryInsertResult::Inserted(n) if n > 0))
    }
}

/// `(SELECT COUNT(user_id) FROM room_members WHERE room_id = rooms.id)`.
fn member_count_of_room() -> Expr {
    // Scoped: sea-query's blanket `ExprTrait` would shadow `Ord::min` & co.
    use sea_orm::sea_query::ExprTrait;
    let count = Query::select()
        .expr(Expr::col((room_member::Entity, room_member::Column::UserId)).count())
        .from(room_member::Entity)
        .and_where(
            Expr::col((room_member::Entity, room_member::Column::RoomId))
                .equals((room::Entity, room::Column::Id)),
        )
        .to_owned();
    Expr::SubQuery(None, Box::new(count.into()))
}

/// `EXISTS (SELECT 1 FROM room_members WHERE room_id = rooms.id AND user_id = viewer)`.
fn is_member_of_room(viewer: UserId) -> Expr {
    use sea_orm::sea_query::ExprTrait;
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(room_member::Entity)
            .and_where(
                Expr::col((room_member::Entity, room_member::Column::RoomId))
                    .equals((room::Entity, room::Column::Id)),
            )
            .and_where(Expr::col((room_member::Entity, room_member::Column::UserId)).eq(viewer.0))
            .to_owned(),
    )
}

async fn insert_room_with_owner(
    txn: &DatabaseTransaction,
    row: room::ActiveModel,
    owner: UserId,
    now: DateTime<Utc>,
) -> Result<RoomRecord, StoreError> {
    let created = room::Entity::insert(row)
        .exec_with_returning(txn)
        .await
        .map_err(fk_violation_is_not_found)?;
    let membership = room_member::ActiveModel {
        room_id: Set(created.id),
        user_id: Set(owner.0),
        role: Set(OWNER_ROLE.to_owned()),
        joined_at: Set(now),
        last_read_seq: Set(0),
    };
    room_member::Entity::insert(membership)
        .exec_without_returning(txn)
        .await
        .map_err(fk_violation_is_not_found)?;
    Ok(created.into())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at_once, backends, now_ms, room, send_messages, user, users};
    use super::*;

    #[tokio::test]
    async fn membership_is_idempotent() {
        for t in backends(4).await {
            let s = &t.store;
            let now = now_ms();
            let u = user(s, "gina").await;
            assert_eq!(s.member_role(RoomId(1), u.id).await.unwrap(), None);
            assert!(s.add_member(RoomId(1), u.id, "member", now).await.unwrap());
            assert!(
                !s.add_member(RoomId(1), u.id, "admin", now).await.unwrap(),
                "{}",
                t.label
            );
            assert_eq!(
                s.member_role(RoomId(1), u.id).await.unwrap().as_deref(),
                Some("member")
            );

            // Concurrent duplicate joins: exactly one inserts, none fails.
            let v = user(s, "hank").await;
            let joins = at_once(s, 10, |s, _| async move {
                s.add_member(RoomId(1), v.id, "member", now).await.unwrap()
            })
            .await;
            let inserted = joins.into_iter().filter(|&inserted| inserted).count();
            assert_eq!(inserted, 1, "{}", t.label);

            assert!(matches!(
                s.add_member(RoomId(99), u.id, "member", now).await,
                Err(StoreError::NotFound)
            ));
            assert!(matches!(
                s.add_member(RoomId(1), UserId(999), "member", now).await,
                Err(StoreError::NotFound)
            ));
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn create_room_with_owner_makes_the_owner_a_member() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let owner = user(s, "olga").await;
            let r = s
                .create_room_with_owner("den", "Olga's den", true, owner.id, now)
                .await
                .unwrap();
            assert_eq!(
                (r.name.as_str(), r.description.as_str(), r.is_private),
                ("den", "Olga's den", true)
            );
            assert_eq!(
                (r.owner_id, r.last_seq, r.created_at),
                (Some(owner.id), 0, now)
            );
            assert_eq!(s.find_room(r.id).await.unwrap().as_ref(), Some(&r));
            assert_eq!(
                s.member_role(r.id, owner.id).await.unwrap().as_deref(),
                Some("owner"),
                "{}",
                t.label
            );
            assert_eq!(s.member_count(r.id).await.unwrap(), 1);

            // Missing owner: NotFound, and no room is left behind.
            let err = s
                .create_room_with_owner("ghost", "", false, UserId(404), now)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::NotFound), "{}: {err:?}", t.label);
            assert_eq!(room::Entity::find().count(&s.db).await.unwrap(), 2);
            let next = s
                .create_room_with_owner("next", "", false, owner.id, now)
                .await
                .unwrap();
            assert_eq!(
                s.visible_rooms(owner.id, None, 100)
                    .await
                    .unwrap()
                    .iter()
                    .map(|l| l.room.name.as_str())
                    .collect::<Vec<_>>(),
                ["general", "den", "next"],
                "{}",
                t.label
            );
            assert_eq!(s.member_count(next.id).await.unwrap(), 1);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn visible_rooms_respects_privacy_pages_and_counts() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let [alice, bob, carol] = users(s, ["alice", "bob", "carol"]).await;
            let general = RoomId(1);
            s.add_member(general, alice.id, "member", now)
                .await
                .unwrap();
            s.add_member(general, bob.id, "member", now).await.unwrap();
            let secret = s
                .create_room_with_owner("secret", "", true, alice.id, now)
                .await
                .unwrap()
                .id;
            let lobby = room(s, "lobby", bob.id).await;
            let open = room(s, "open", alice.id).await;
            let bobs = s
                .create_room_with_owner("bobs", "", true, bob.id, now)
                .await
                .unwrap()
                .id;
            s.add_member(lobby, carol.id, "member", now).await.unwrap();
            // A private room without any member is visible to nobody.
            let empty_private = s
                .create_room("nobody", "", true, None, now)
                .await
                .unwrap()
                .id;

            let ids = |ls: &[RoomListing]| ls.iter().map(|l| l.room.id).collect::<Vec<_>>();
            let all_alice = s.visible_rooms(alice.id, None, 100).await.unwrap();
            assert_eq!(
                ids(&all_alice),
                [general, secret, lobby, open],
                "{}",
                t.label
            );
            let counts: Vec<_> = all_alice.iter().map(|l| l.member_count).collect();
            assert_eq!(counts, [2, 1, 2, 1], "{}", t.label);
            assert_eq!(
                all_alice[1].room,
                s.find_room(secret).await.unwrap().unwrap()
            );
            assert_eq!(
                ids(&s.visible_rooms(bob.id, None, 100).await.unwrap()),
                [general, lobby, open, bobs]
            );
            assert_eq!(
                ids(&s.visible_rooms(carol.id, None, 100).await.unwrap()),
                [general, lobby, open]
            );
            assert_eq!(
                ids(&s.visible_rooms(UserId(404), None, 100).await.unwrap()),
                [general, lobby, open]
            );

            // Becoming a member reveals the private room (and counts).
            s.add_member(secret, bob.id, "member", now).await.unwrap();
            let bob_sees = s.visible_rooms(bob.id, None, 100).await.unwrap();
            assert_eq!(ids(&bob_sees), [general, secret, lobby, open, bobs]);
            assert_eq!(bob_sees[1].member_count, 2);
            assert!(!ids(&bob_sees).contains(&empty_private));

            // Cursor pagination.
            let p1 = s.visible_rooms(alice.id, None, 2).await.unwrap();
            assert_eq!(ids(&p1), [general, secret], "{}", t.label);
            let p2 = s
                .visible_rooms(alice.id, Some(p1[1].room.id), 2)
                .await
                .unwrap();
            assert_eq!(ids(&p2), [lobby, open], "{}", t.label);
            assert!(
                s.visible_rooms(alice.id, Some(open), 2)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // A cursor between visible rooms: the next visible one follows.
            assert_eq!(
                ids(&s.visible_rooms(carol.id, Some(secret), 1).await.unwrap()),
                [lobby]
            );
            assert!(s.visible_rooms(alice.id, None, 0).await.unwrap().is_empty());
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn update_room_changes_only_given_fields() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let owner = user(s, "uma").await;
            let r = s
                .create_room_with_owner("old", "old desc", false, owner.id, now)
                .await
                .unwrap();
            s.insert_message(r.id, owner.id, "hi", None, now)
                .await
                .unwrap();
            let r = s.find_room(r.id).await.unwrap().unwrap();

            let renamed = s.update_room(r.id, Some("new"), None, None).await.unwrap();
            assert_eq!(
                renamed,
                RoomRecord {
                    name: "new".into(),
                    ..r.clone()
                },
                "{}",
                t.label
            );
            let described = s
                .update_room(r.id, None, Some("new desc"), None)
                .await
                .unwrap();
            assert_eq!(
                (described.name.as_str(), described.description.as_str()),
                ("new", "new desc")
            );
            let private = s.update_room(r.id, None, None, Some(true)).await.unwrap();
            assert!(private.is_private);
            let all = s
                .update_room(r.id, Some("n3"), Some(""), Some(false))
                .await
                .unwrap();
            let expected = RoomRecord {
                name: "n3".into(),
                description: String::new(),
                is_private: false,
                ..r.clone()
            };
            assert_eq!(all, expected, "{}", t.label);
            assert_eq!(s.find_room(r.id).await.unwrap(), Some(expected.clone()));
            // Nothing to change: the room as it is.
            assert_eq!(
                s.update_room(r.id, None, None, None).await.unwrap(),
                expected
            );
            // Other rooms untouched.
            assert_eq!(
                s.find_room(RoomId(1)).await.unwrap().unwrap().name,
                "general"
            );

            for (name, private) in [(Some("x"), None), (None, Some(true)), (None, None)] {
                let err = s
                    .update_room(RoomId(404), name, None, private)
                    .await
                    .unwrap_err();
                assert!(matches!(err, StoreError::NotFound), "{}: {err:?}", t.label);
            }
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn delete_room_cascades() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let [owner, guest] = users(s, ["dora", "gus"]).await;
            let r = room(s, "doomed", owner.id).await;
            s.add_member(r, guest.id, "member", now).await.unwrap();
            s.add_member(RoomId(1), guest.id, "member", now)
                .await
                .unwrap();
            send_messages(s, r, guest.id, 3).await;
            let kept = s
                .insert_message(RoomId(1), guest.id, "kept", None, now)
                .await
                .unwrap();
            assert_eq!(s.member_count(r).await.unwrap(), 2);

            s.delete_room(r).await.unwrap();
            assert_eq!(s.find_room(r).await.unwrap(), None, "{}", t.label);
            assert_eq!(s.member_role(r, owner.id).await.unwrap(), None);
            assert_eq!(s.member_role(r, guest.id).await.unwrap(), None);
            assert_eq!(s.member_count(r).await.unwrap(), 0, "{}", t.label);
            assert!(s.members(r).await.unwrap().is_empty());
            assert!(
                s.messages_after_seq(r, 0, 100).await.unwrap().is_empty(),
                "{}",
                t.label
            );
            assert_eq!(
                super::super::entities::message::Entity::find()
                    .count(&s.db)
                    .await
                    .unwrap(),
                1,
                "{}: only the other room's message is left",
                t.label
            );
            // Users and other rooms survive.
            assert!(s.find_user(owner.id).await.unwrap().is_some());
            assert_eq!(
                s.member_role(RoomId(1), guest.id).await.unwrap().as_deref(),
                Some("member")
            );
            assert_eq!(
                s.messages_after_seq(RoomId(1), 0, 10).await.unwrap(),
                vec![kept]
            );

            let err = s.delete_room(r).await.unwrap_err();
            assert!(matches!(err, StoreError::NotFound), "{}: {err:?}", t.label);
            t.cleanup().await;
        }
    }
}
