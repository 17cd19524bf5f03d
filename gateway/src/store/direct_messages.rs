//! Direct-message rooms: one private room per pair of users, with the two as
//! its only members and no owner (so nobody can add anyone), created once;
//! and what the users' `dm_policy` needs to know.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement,
};
use shared::ids::UserId;

use super::entities::{room, user};
use super::rooms::DM_KIND;
use super::{RoomRecord, Store, StoreError, UserRecord};
use crate::domain::DmPolicy;
use chrono::{DateTime, Utc};

/// The unique key of the pair's room: the same whichever side asks.
fn dm_key(a: UserId, b: UserId) -> String {
    format!("{}:{}", a.0.min(b.0), a.0.max(b.0))
}

/// The room's name: the two usernames, lower id first, cut to the 64
/// characters a room name may have (usernames are ASCII).
fn dm_name(a: &UserRecord, b: &UserRecord) -> String {
    let (first, second) = if a.id < b.id { (a, b) } else { (b, a) };
    let mut name = format!("{}, {}", first.username, second.username);
    name.truncate(64);
    name
}

impl Store {
    /// The direct-message room of `a` and `b`, created with both as
    /// members if there is none (and both made members again if one left),
    /// and whether this call created it. Concurrent calls for the pair, from
    /// either side, return the same room: its key is unique, and an insert
    /// that loses the race finds the winner's row. `StoreError::NotFound` if
    /// a user does not exist.
    pub async fn open_dm(
        &self,
        a: &UserRecord,
        b: &UserRecord,
        now: DateTime<Utc>,
    ) -> Result<(RoomRecord, bool), StoreError> {
        let key = dm_key(a.id, b.id);
        let (room, created) = match self.find_dm(&key).await? {
            Some(room) => (room, false),
            None => {
                let row = room::ActiveModel {
                    name: Set(dm_name(a, b)),
                    description: Set(String::new()),
                    is_private: Set(true),
                    owner_id: Set(None),
                    last_seq: Set(0),
                    created_at: Set(now),
                    kind: Set(DM_KIND.to_owned()),
                    dm_key: Set(Some(key.clone())),
                    ..Default::default()
                };
                let inserted = room::Entity::insert(row)
                    .on_conflict(
                        OnConflict::column(room::Column::DmKey)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(&self.writer)
                    .await?;
                let room = self.find_dm(&key).await?.ok_or(StoreError::NotFound)?;
                (room, inserted > 0)
            }
        };
        for user in [a.id, b.id] {
            self.add_member(room.id, user, "member", now).await?;
        }
        Ok((room, created))
    }

    /// The direct-message room of `a` and `b`, if they have one.
    pub async fn dm_between(&self, a: UserId, b: UserId) -> Result<Option<RoomRecord>, StoreError> {
        self.find_dm(&dm_key(a, b)).await
    }

    async fn find_dm(&self, key: &str) -> Result<Option<RoomRecord>, StoreError> {
        Ok(room::Entity::find()
            .filter(room::Column::DmKey.eq(key))
            .one(&self.writer)
            .await?
            .map(Into::into))
    }

    /// Whether `a` and `b` are both members of some room other than room 1
    /// (the lobby everyone is in) and direct-message rooms.
    pub async fn share_a_room(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        let backend = self.db.get_database_backend();
        let sql = "SELECT 1 AS shared FROM room_members x \
             JOIN room_members y ON y.room_id = x.room_id \
             JOIN rooms r ON r.id = x.room_id \
             WHERE x.user_id = $1 AND y.user_id = $2 AND r.id <> 1 AND r.kind = 'room' \
             LIMIT 1";
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => sql.to_owned(),
            _ => sql.replace("$1", "?").replace("$2", "?"),
        };
        let found = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [a.0.into(), b.0.into()],
            ))
            .await?;
        Ok(found.is_some())
    }

    /// Set who may open a direct-message room with `user`.
    pub async fn set_dm_policy(&self, user: UserId, policy: DmPolicy) -> Result<(), StoreError> {
        let updated = user::Entity::update_many()
            .col_expr(user::Column::DmPolicy, Expr::value(policy.as_str()))
            .filter(user::Column::Id.eq(user.0))
            .exec(&self.writer)
            .await?;
        if updated.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{backends, now_ms, room, users};
    use super::*;
    use shared::ids::RoomId;

    #[tokio::test]
    async fn one_room_per_pair_whoever_asks_and_however_often() {
        for t in backends(4).await {
            let s = &t.store;
            let now = now_ms();
            let [ann, bo, cy] = users(s, ["ann", "bo", "cy"]).await;
            // Both sides at once, several times each.
            let opened = futures_util::future::join_all((0..8).map(|i| {
                let (x, y) = if i % 2 == 0 { (&ann, &bo) } else { (&bo, &ann) };
                s.open_dm(x, y, now)
            }))
            .await;
            let opened: Vec<(RoomRecord, bool)> = opened.into_iter().map(Result::unwrap).collect();
            let ids: Vec<RoomId> = opened.iter().map(|(r, _)| r.id).collect();
            assert!(ids.iter().all(|id| *id == ids[0]), "{}: {ids:?}", t.label);
            assert_eq!(
                opened.iter().filter(|(_, created)| *created).count(),
                1,
                "created once"
            );
            let room = s.find_room(ids[0]).await.unwrap().unwrap();
            assert!(room.is_dm && room.is_private && room.owner_id.is_none());
            assert_eq!(room.name, "ann, bo");
            assert_eq!(
                s.dm_between(bo.id, ann.id).await.unwrap().map(|r| r.id),
                Some(room.id)
            );
            let members: Vec<UserId> = s
                .members(room.id)
                .await
                .unwrap()
                .iter()
                .map(|m| m.user_id)
                .collect();
            assert_eq!(members.len(), 2);
            assert!(members.contains(&ann.id) && members.contains(&bo.id));
            let (other, _) = s.open_dm(&cy, &ann, now).await.unwrap();
            assert_ne!(other.id, room.id);
            assert_eq!(other.name, "ann, cy");
            let ghost = UserRecord {
                id: UserId(999_999),
                ..cy.clone()
            };
            assert!(matches!(
                s.open_dm(&ann, &ghost, now).await,
                Err(StoreError::NotFound)
            ));
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn shared_rooms_leave_out_the_lobby_and_direct_messages() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let [ann, bo] = users(s, ["ann", "bo"]).await;
            for u in [ann.id, bo.id] {
                s.add_member(RoomId(1), u, "member", now).await.unwrap();
            }
            s.open_dm(&ann, &bo, now).await.unwrap();
            assert!(!s.share_a_room(ann.id, bo.id).await.unwrap(), "{}", t.label);
            let club = room(s, "club", ann.id).await;
            s.add_member(club, bo.id, "member", now).await.unwrap();
            assert!(s.share_a_room(ann.id, bo.id).await.unwrap());
            assert!(s.share_a_room(bo.id, ann.id).await.unwrap());
            t.cleanup().await;
        }
    }
}
