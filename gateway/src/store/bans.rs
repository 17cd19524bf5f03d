//! Room bans: a user kept out of a room until a time, or for good. Banning
//! removes the membership in the same transaction; admission refuses a
//! banned user until the ban ends (an expired row counts as no ban).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use shared::ids::{RoomId, UserId};

use super::entities::{room_ban, room_member};
use super::{Store, StoreError};

/// A ban in force.
#[derive(Clone, Debug, PartialEq)]
pub struct BanRecord {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub banned_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    /// `None`: for good.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<room_ban::Model> for BanRecord {
    fn from(m: room_ban::Model) -> Self {
        BanRecord {
            room_id: RoomId(m.room_id),
            user_id: UserId(m.user_id),
            banned_by: m.banned_by.map(UserId),
            created_at: m.created_at,
            expires_at: m.expires_at,
        }
    }
}

/// Rows of bans still in force at `now`.
pub(super) fn in_force(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(room_ban::Column::ExpiresAt.is_null())
        .add(room_ban::Column::ExpiresAt.gt(now))
}

impl Store {
    /// Ban `user` from `room` until `expires_at` (or for good), replacing
    /// any earlier ban, and remove the membership. `NotFound` when the room
    /// or the user does not exist.
    pub async fn ban(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<BanRecord, StoreError> {
        let txn = self.begin_write().await?;
        let row = room_ban::ActiveModel {
            room_id: Set(room.0),
            user_id: Set(user.0),
            banned_by: Set(Some(by.0)),
            created_at: Set(now),
            expires_at: Set(expires_at),
        };
        room_ban::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([room_ban::Column::RoomId, room_ban::Column::UserId])
                    .update_columns([
                        room_ban::Column::BannedBy,
                        room_ban::Column::CreatedAt,
                        room_ban::Column::ExpiresAt,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await
            .map_err(super::fk_violation_is_not_found)?;
        room_member::Entity::delete_by_id((room.0, user.0))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(BanRecord {
            room_id: room,
            user_id: user,
            banned_by: Some(by),
            created_at: now,
            expires_at,
        })
    }

    /// Lift `user`'s ban from `room`; false if there was none in force.
    pub async fn lift_ban(
        &self,
        room: RoomId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let lifted = room_ban::Entity::delete_many()
            .filter(room_ban::Column::RoomId.eq(room.0))
            .filter(room_ban::Column::UserId.eq(user.0))
            .filter(in_force(now))
            .exec(&self.writer)
            .await?;
        Ok(lifted.rows_affected > 0)
    }

    /// `user`'s ban from `room` if one is in force at `now`.
    pub async fn active_ban(
        &self,
        room: RoomId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<BanRecord>, StoreError> {
        Ok(room_ban::Entity::find_by_id((room.0, user.0))
            .filter(in_force(now))
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// Whether one of `a` and `b` banned the other from a room, in a ban
    /// still in force at `now` (their direct messages are then closed).
    pub async fn ban_between(
        &self,
        a: UserId,
        b: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let one_way = |user: UserId, by: UserId| {
            Condition::all()
                .add(room_ban::Column::UserId.eq(user.0))
                .add(room_ban::Column::BannedBy.eq(by.0))
        };
        Ok(room_ban::Entity::find()
            .filter(Condition::any().add(one_way(a, b)).add(one_way(b, a)))
            .filter(in_force(now))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// The bans of `room` in force at `now`, newest first.
    pub async fn bans(
        &self,
        room: RoomId,
        now: DateTime<Utc>,
    ) -> Result<Vec<BanRecord>, StoreError> {
        Ok(room_ban::Entity::find()
            .filter(room_ban::Column::RoomId.eq(room.0))
            .filter(in_force(now))
            .order_by_desc(room_ban::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ann_and_bo_in_a_room, backends, now_ms};
    use super::*;
    use chrono::TimeDelta;

    #[tokio::test]
    async fn a_ban_removes_the_member_and_ends_when_it_expires() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let (owner, u, room) = ann_and_bo_in_a_room(s).await;
            let later = now + TimeDelta::seconds(60);
            let ban = s.ban(room, u.id, owner.id, Some(later), now).await.unwrap();
            assert_eq!(ban.expires_at, Some(later));
            assert_eq!(
                s.member_role(room, u.id).await.unwrap(),
                None,
                "{}: no longer a member",
                t.label
            );
            assert_eq!(
                s.active_ban(room, u.id, now).await.unwrap(),
                Some(ban.clone())
            );
            assert_eq!(s.bans(room, now).await.unwrap(), vec![ban]);
            let after = later + TimeDelta::seconds(1);
            assert_eq!(
                s.active_ban(room, u.id, after).await.unwrap(),
                None,
                "expired"
            );
            assert!(s.bans(room, after).await.unwrap().is_empty());
            // For good, replacing the earlier one; lifted.
            s.ban(room, u.id, owner.id, None, now).await.unwrap();
            assert!(s.active_ban(room, u.id, after).await.unwrap().is_some());
            assert!(s.lift_ban(room, u.id, after).await.unwrap());
            assert!(!s.lift_ban(room, u.id, after).await.unwrap());
            assert!(matches!(
                s.ban(RoomId(999), u.id, owner.id, None, now).await,
                Err(StoreError::NotFound)
            ));
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn a_ban_stands_between_the_two_users_either_way_while_in_force() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let (owner, u, room) = ann_and_bo_in_a_room(s).await;
            let third = super::super::test_support::user(s, "cy").await;
            assert!(!s.ban_between(owner.id, u.id, now).await.unwrap());
            let later = now + TimeDelta::seconds(60);
            s.ban(room, u.id, owner.id, Some(later), now).await.unwrap();
            for (a, b) in [(owner.id, u.id), (u.id, owner.id)] {
                assert!(s.ban_between(a, b, now).await.unwrap(), "{}", t.label);
            }
            assert!(!s.ban_between(u.id, third.id, now).await.unwrap(), "others");
            let after = later + TimeDelta::seconds(1);
            assert!(
                !s.ban_between(owner.id, u.id, after).await.unwrap(),
                "expired"
            );
            t.cleanup().await;
        }
    }
}
