//! Rooms and room membership: room lookup, a member's role, idempotent joins.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait, TryInsertResult};
use shared::ids::{RoomId, UserId};

use super::entities::{room, room_member};
use super::{RoomRecord, Store, StoreError, fk_violation_is_not_found};

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
            .exec_with_returning(&self.db)
            .await
            .map_err(fk_violation_is_not_found)?;
        Ok(model.into())
    }

    pub async fn find_room(&self, id: RoomId) -> Result<Option<RoomRecord>, StoreError> {
        Ok(room::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .map(Into::into))
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
    pub async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let row = room_member::ActiveModel {
            room_id: Set(room.0),
            user_id: Set(user.0),
            role: Set(role.to_owned()),
            joined_at: Set(now),
        };
        let result = room_member::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(&self.db)
            .await
            .map_err(fk_violation_is_not_found)?;
        Ok(matches!(result, TryInsertResult::Inserted(n) if n > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{backends, now_ms};
    use super::*;

    #[tokio::test]
    async fn membership_is_idempotent() {
        for t in backends(4).await {
            let s = &t.store;
            let now = now_ms();
            let u = s.create_user("gina", "h", "Gina", now).await.unwrap();
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
            let v = s.create_user("hank", "h", "Hank", now).await.unwrap();
            let joins = (0..10).map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.add_member(RoomId(1), v.id, "member", now).await })
            });
            let inserted = futures_util::future::join_all(joins)
                .await
                .into_iter()
                .filter(|r| *r.as_ref().unwrap().as_ref().unwrap())
                .count();
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
}
