//! What admission needs to know about a user and a room, in one statement:
//! the room's newest seq and privacy, the user's role in it and whether a
//! ban is in force. Three lookups that were three round trips (each one, on
//! SQLite, a hop to sqlx's connection thread and back) on every upgrade and
//! `join_room`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait};
use shared::ids::{RoomId, UserId};

use super::bans::in_force;
use super::entities::{room, room_ban, room_member};
use super::{Store, StoreError};

/// A room as one user is about to enter it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEntry {
    /// The room's newest seq.
    pub last_seq: i64,
    pub is_private: bool,
    /// 'owner' | 'admin' | 'member', `None` if not a member.
    pub role: Option<String>,
    /// A ban is in force (its end: [`Store::active_ban`]).
    pub banned: bool,
}

impl Store {
    /// `None` if the room does not exist.
    pub async fn room_entry(
        &self,
        room: RoomId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<RoomEntry>, StoreError> {
        let role = room_member::Entity::find()
            .select_only()
            .column(room_member::Column::Role)
            .filter(room_member::Column::RoomId.eq(room.0))
            .filter(room_member::Column::UserId.eq(user.0))
            .into_query();
        let ban = room_ban::Entity::find()
            .select_only()
            .column(room_ban::Column::UserId)
            .filter(room_ban::Column::RoomId.eq(room.0))
            .filter(room_ban::Column::UserId.eq(user.0))
            .filter(in_force(now))
            .into_query();
        let select: SelectStatement = Query::select()
            .columns([room::Column::LastSeq, room::Column::IsPrivate])
            .expr_as(Expr::SubQuery(None, Box::new(role.into())), "role")
            .expr_as(Expr::exists(ban), "banned")
            .from(room::Entity)
            .and_where(room::Column::Id.eq(room.0))
            .to_owned();
        let Some(row) = self.db.query_one(&select).await? else {
            return Ok(None);
        };
        Ok(Some(RoomEntry {
            last_seq: row.try_get("", "last_seq")?,
            is_private: row.try_get("", "is_private")?,
            role: row.try_get("", "role")?,
            banned: row.try_get("", "banned")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{backends, now_ms, users};
    use super::*;
    use chrono::TimeDelta;

    #[tokio::test]
    async fn one_statement_tells_role_privacy_ban_and_seq() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let [owner, other] = users(s, ["ro", "rp"]).await;
            let room = s
                .create_room_with_owner("entry", "", true, owner.id, now)
                .await
                .unwrap()
                .id;
            s.insert_message(room, owner.id, "one", None, now)
                .await
                .unwrap();
            let seen = |role: Option<&str>, banned| RoomEntry {
                last_seq: 1,
                is_private: true,
                role: role.map(str::to_owned),
                banned,
            };
            let entry = |u| s.room_entry(room, u, now);
            assert_eq!(
                entry(owner.id).await.unwrap(),
                Some(seen(Some("owner"), false)),
                "{}",
                t.label
            );
            assert_eq!(
                entry(other.id).await.unwrap(),
                Some(seen(None, false)),
                "{}",
                t.label
            );

            let until = now + TimeDelta::seconds(60);
            s.ban(room, other.id, owner.id, Some(until), now)
                .await
                .unwrap();
            assert_eq!(
                entry(other.id).await.unwrap(),
                Some(seen(None, true)),
                "{}",
                t.label
            );
            let later = s.room_entry(room, other.id, until).await.unwrap();
            assert_eq!(
                later,
                Some(seen(None, false)),
                "ended at {until}: {}",
                t.label
            );

            let missing = s.room_entry(RoomId(room.0 + 100), owner.id, now).await;
            assert_eq!(missing.unwrap(), None, "{}", t.label);
        }
    }
}
