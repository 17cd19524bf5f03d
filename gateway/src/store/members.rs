//! Room members: the member list with each member's public profile, role
//! changes and removal (a member's role and idempotent joins: `rooms.rs`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};
use shared::ids::{RoomId, UserId};

use super::entities::{room_member, user};
use super::{MemberRecord, Store, StoreError};

/// One row of the `room_members` ⋈ `users` query in [`Store::members`].
#[derive(Debug, FromQueryResult)]
struct MemberRow {
    user_id: i64,
    username: String,
    nickname: String,
    role: String,
    joined_at: DateTime<Utc>,
}

impl From<MemberRow> for MemberRecord {
    fn from(r: MemberRow) -> Self {
        MemberRecord {
            user_id: UserId(r.user_id),
            username: r.username,
            nickname: r.nickname,
            role: r.role,
            joined_at: r.joined_at,
        }
    }
}

impl Store {
    /// The room's members with their username, nickname, role and join
    /// time, ordered by `joined_at`, then user id. Empty for a room without
    /// members or that does not exist.
    pub async fn members(&self, room: RoomId) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = room_member::Entity::find()
            .select_only()
            .column(room_member::Column::UserId)
            .column(user::Column::Username)
            .column(user::Column::Nickname)
            .column(room_member::Column::Role)
            .column(room_member::Column::JoinedAt)
            .join(JoinType::InnerJoin, room_member::Relation::User.def())
            .filter(room_member::Column::RoomId.eq(room.0))
            .order_by_asc(room_member::Column::JoinedAt)
            .order_by_asc(room_member::Column::UserId)
            .into_model::<MemberRow>()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Sets an existing member's role ('owner' | 'admin' | 'member'; the
    /// caller validates it). `StoreError::NotFound` if `user` is not a
    /// member of `room` (or either does not exist).
    pub async fn set_member_role(
        &self,
        room: RoomId,
        user: UserId,
        role: &str,
    ) -> Result<(), StoreError> {
        let updated = room_member::Entity::update_many()
            .col_expr(room_member::Column::Role, Expr::value(role))
            .filter(room_member::Column::RoomId.eq(room.0))
            .filter(room_member::Column::UserId.eq(user.0))
            .exec(&self.writer)
            .await?;
        if updated.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Removes `user` from `room`. Returns false if they were not a member
    /// (or either does not exist).
    pub async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let deleted = room_member::Entity::delete_by_id((room.0, user.0))
            .exec(&self.writer)
            .await?;
        Ok(deleted.rows_affected > 0)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::super::test_support::{ann_and_bo_in_a_room, backends, now_ms};
    use super::*;

    #[tokio::test]
    async fn members_in_join_order_with_profiles() {
        for t in backends(2).await {
            let s = &t.store;
            let t0 = now_ms();
            let later = t0 + TimeDelta::milliseconds(2500);
            let owner = s.create_user("mia", "h", "Mia M.", t0).await.unwrap();
            let a = s.create_user("ned", "h", "Ned", t0).await.unwrap();
            let b = s.create_user("oz", "h", "Oz", t0).await.unwrap();
            let outsider = s.create_user("pia", "h", "Pia", t0).await.unwrap();
            let r = s
                .create_room_with_owner("club", "", true, owner.id, later)
                .await
                .unwrap()
                .id;
            // b joins before a; a and the owner at the same instant later on.
            s.add_member(r, b.id, "admin", t0).await.unwrap();
            s.add_member(r, a.id, "member", later).await.unwrap();
            s.add_member(RoomId(1), outsider.id, "member", t0)
                .await
                .unwrap();
            s.set_users_online(&[(a.id, true, later)]).await.unwrap();

            let got = s.members(r).await.unwrap();
            assert_eq!(
                got,
                vec![
                    MemberRecord {
                        user_id: b.id,
                        username: "oz".into(),
                        nickname: "Oz".into(),
                        role: "admin".into(),
                        joined_at: t0,
                    },
                    MemberRecord {
                        user_id: owner.id,
                        username: "mia".into(),
                        nickname: "Mia M.".into(),
                        role: "owner".into(),
                        joined_at: later,
                    },
                    MemberRecord {
                        user_id: a.id,
                        username: "ned".into(),
                        nickname: "Ned".into(),
                        role: "member".into(),
                        joined_at: later,
                    },
                ],
                "{}",
                t.label
            );
            assert!(owner.id < a.id);
            assert_eq!(
                s.members(RoomId(1))
                    .await
                    .unwrap()
                    .iter()
                    .map(|m| m.user_id)
                    .collect::<Vec<_>>(),
                [outsider.id]
            );
            let empty = s.create_room("empty", "", false, None, t0).await.unwrap();
            assert!(s.members(empty.id).await.unwrap().is_empty());
            assert!(s.members(RoomId(404)).await.unwrap().is_empty());
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn set_member_role_and_remove_member() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let (owner, m, r) = ann_and_bo_in_a_room(s).await;
            s.add_member(RoomId(1), m.id, "member", now).await.unwrap();

            s.set_member_role(r, m.id, "admin").await.unwrap();
            assert_eq!(
                s.member_role(r, m.id).await.unwrap().as_deref(),
                Some("admin"),
                "{}",
                t.label
            );
            // Only that membership changed.
            assert_eq!(
                s.member_role(RoomId(1), m.id).await.unwrap().as_deref(),
                Some("member")
            );
            assert_eq!(
                s.member_role(r, owner.id).await.unwrap().as_deref(),
                Some("owner")
            );
            // Same role again is fine.
            s.set_member_role(r, m.id, "admin").await.unwrap();
            for (room, user) in [(r, UserId(404)), (RoomId(404), m.id), (RoomId(1), owner.id)] {
                let err = s.set_member_role(room, user, "admin").await.unwrap_err();
                assert!(matches!(err, StoreError::NotFound), "{}: {err:?}", t.label);
            }
            assert_eq!(s.member_role(RoomId(1), owner.id).await.unwrap(), None);

            assert!(s.remove_member(r, m.id).await.unwrap(), "{}", t.label);
            assert_eq!(s.member_role(r, m.id).await.unwrap(), None);
            assert!(!s.remove_member(r, m.id).await.unwrap(), "{}", t.label);
            assert!(!s.remove_member(RoomId(404), m.id).await.unwrap());
            assert_eq!(s.member_count(r).await.unwrap(), 1);
            assert_eq!(
                s.member_role(RoomId(1), m.id).await.unwrap().as_deref(),
                Some("member")
            );
            // Removed members can join again.
            assert!(s.add_member(r, m.id, "member", now).await.unwrap());
            t.cleanup().await;
        }
    }
}
