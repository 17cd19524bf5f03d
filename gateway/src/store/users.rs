//! Users: registration, lookups, nickname changes and the persisted online
//! flag / last-seen time (users first seen through an external JWT:
//! `external_users.rs`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use shared::ids::UserId;

use super::entities::user;
use super::{Store, StoreError, UserRecord};
use crate::domain::Username;

/// Ids per `IN (..)` query, well below every backend's bind-parameter limit.
const IDS_PER_STATEMENT: usize = 500;
impl From<user::Model> for UserRecord {
    fn from(m: user::Model) -> Self {
        UserRecord {
            id: UserId(m.id),
            username: m.username,
            password_hash: m.password_hash,
            nickname: m.nickname,
            is_online: m.is_online,
            last_seen: m.last_seen,
            created_at: m.created_at,
            deleted: m.deleted_at.is_some(),
            dm_policy: crate::domain::DmPolicy::parse(&m.dm_policy).unwrap_or_default(),
        }
    }
}

impl Store {
    /// Registers a user (offline, never seen). A taken username (compared
    /// by `Username::key`: case and width do not make another name) gives
    /// `StoreError::Conflict`. Callers validate lengths (username ≤ 32,
    /// nickname ≤ 64 characters).
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        nickname: &str,
        now: DateTime<Utc>,
    ) -> Result<UserRecord, StoreError> {
        let row = user::ActiveModel {
            id: NotSet,
            username: Set(username.to_owned()),
            username_key: Set(Some(Username::key(username))),
            password_hash: Set(Some(password_hash.to_owned())),
            nickname: Set(nickname.to_owned()),
            is_online: Set(false),
            last_seen: Set(None),
            created_at: Set(now),
            deleted_at: Set(None),
            dm_policy: NotSet,
        };
        Ok(user::Entity::insert(row)
            .exec_with_returning(&self.writer)
            .await?
            .into())
    }

    pub async fn find_user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(user::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    pub async fn find_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let found = user::Entity::find()
            .filter(user::Column::UsernameKey.eq(Username::key(username)))
            .one(&self.db)
            .await?;
        Ok(found.map(Into::into))
    }

    /// The users among `ids` that exist, ordered by id (each at most once).
    pub async fn find_users(&self, ids: &[UserId]) -> Result<Vec<UserRecord>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let found = user::Entity::find()
                .filter(user::Column::Id.is_in(chunk.iter().map(|id| id.0)))
                .order_by_asc(user::Column::Id)
                .all(&self.db)
                .await?;
            out.extend(found.into_iter().map(UserRecord::from));
        }
        out.sort_by_key(|u| u.id);
        out.dedup_by_key(|u| u.id);
        Ok(out)
    }

    /// Changes the user's nickname and returns the user as stored afterwards.
    /// Callers validate the length (≤ 64 characters). `StoreError::NotFound`
    /// if the user does not exist.
    pub async fn set_nickname(&self, id: UserId, nickname: &str) -> Result<UserRecord, StoreError> {
        let updated = user::Entity::update_many()
            .col_expr(user::Column::Nickname, Expr::value(nickname))
            .filter(user::Column::Id.eq(id.0))
            .exec_with_returning(&self.writer)
            .await?;
        updated
            .into_iter()
            .next()
            .map(Into::into)
            .ok_or(StoreError::NotFound)
    }

    /// Persists presence for several users in one statement per
    /// [`IDS_PER_STATEMENT`] users: `(user, online, at)`, where going offline
    /// also sets `last_seen = at`. Returns how many users exist of those.
    /// (One `UPDATE` per user was two statements per connection, on
    /// SQLite each its own commit: most of an upgrade's database work.)
    pub async fn set_users_online(
        &self,
        states: &[(UserId, bool, DateTime<Utc>)],
    ) -> Result<u64, StoreError> {
        use sea_orm::sea_query::CaseStatement;
        let mut updated = 0;
        for chunk in states.chunks(IDS_PER_STATEMENT) {
            let mut online = CaseStatement::new();
            let mut seen = CaseStatement::new();
            let mut any_offline = false;
            for (id, on, at) in chunk {
                online = online.case(user::Column::Id.eq(id.0), Expr::val(*on));
                if !on {
                    seen = seen.case(user::Column::Id.eq(id.0), Expr::val(*at));
                    any_offline = true;
                }
            }
            let mut update = user::Entity::update_many()
                .col_expr(user::Column::IsOnline, online.into())
                .filter(user::Column::Id.is_in(chunk.iter().map(|(id, _, _)| id.0)));
            if any_offline {
                let seen = seen.finally(Expr::col(user::Column::LastSeen));
                update = update.col_expr(user::Column::LastSeen, seen.into());
            }
            updated += update.exec(&self.writer).await?.rows_affected;
        }
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{backends, now_ms, user, users};
    use super::*;

    #[tokio::test]
    async fn create_find_and_duplicate() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let alice = s
                .create_user("alice", "$argon2id$x", "Alice", now)
                .await
                .unwrap();
            assert_eq!(alice.username, "alice");
            assert_eq!(alice.password_hash.as_deref(), Some("$argon2id$x"));
            assert_eq!(alice.created_at, now, "{}: timestamp round-trip", t.label);
            assert!(!alice.is_online && alice.last_seen.is_none());
            assert!(matches!(
                s.create_user("alice", "other", "Other", now).await,
                Err(StoreError::Conflict)
            ));
            let bob = user(s, "bob").await;
            assert_eq!(s.find_user(alice.id).await.unwrap().as_ref(), Some(&alice));
            assert_eq!(
                s.find_user_by_username("bob").await.unwrap().as_ref(),
                Some(&bob)
            );
            assert_eq!(s.find_user_by_username("nobody").await.unwrap(), None);
            let found = s
                .find_users(&[bob.id, UserId(9999), alice.id, bob.id])
                .await
                .unwrap();
            assert_eq!(found, vec![alice.clone(), bob.clone()]);
            assert!(s.find_users(&[]).await.unwrap().is_empty());
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn online_flag_and_last_seen() {
        for t in backends(2).await {
            let s = &t.store;
            let u = user(s, "frank").await;
            let t1 = now_ms();
            s.set_users_online(&[(u.id, true, t1)]).await.unwrap();
            let on = s.find_user(u.id).await.unwrap().unwrap();
            assert!(on.is_online && on.last_seen.is_none());
            let t2 = t1 + chrono::TimeDelta::milliseconds(1500);
            s.set_users_online(&[(u.id, false, t2)]).await.unwrap();
            let off = s.find_user(u.id).await.unwrap().unwrap();
            assert!(!off.is_online);
            assert_eq!(off.last_seen, Some(t2));
            assert_eq!(
                s.set_users_online(&[(UserId(123456), true, t2)])
                    .await
                    .unwrap(),
                0
            );
            // Several at once: one goes offline (its own time), one comes
            // online (its last_seen kept), an unknown id is skipped.
            let v = user(s, "vera").await;
            let t3 = t2 + chrono::TimeDelta::milliseconds(700);
            let states = [
                (u.id, true, t3),
                (v.id, false, t3),
                (UserId(123456), false, t1),
            ];
            assert_eq!(s.set_users_online(&states).await.unwrap(), 2, "{}", t.label);
            let u = s.find_user(u.id).await.unwrap().unwrap();
            assert!(u.is_online && u.last_seen == Some(t2), "{}", t.label);
            let v = s.find_user(v.id).await.unwrap().unwrap();
            assert!(!v.is_online && v.last_seen == Some(t3), "{}", t.label);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn set_nickname_changes_only_the_nickname() {
        for t in backends(2).await {
            let s = &t.store;
            let [u, other] = users(s, ["nina", "otto"]).await;
            let renamed = s.set_nickname(u.id, "Nina the Great ✨").await.unwrap();
            assert_eq!(
                renamed,
                UserRecord {
                    nickname: "Nina the Great ✨".into(),
                    ..u.clone()
                },
                "{}",
                t.label
            );
            assert_eq!(s.find_user(u.id).await.unwrap(), Some(renamed));
            assert_eq!(s.find_user(other.id).await.unwrap(), Some(other));
            assert!(matches!(
                s.set_nickname(UserId(123456), "x").await,
                Err(StoreError::NotFound)
            ));
            t.cleanup().await;
        }
    }
}
