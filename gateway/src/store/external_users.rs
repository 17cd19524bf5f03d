//! Users first seen through a JWT minted by another service: created on
//! first sight with the token's own id, a username derived from its claims
//! and no password.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, TransactionTrait};
use shared::ids::UserId;

use super::entities::user;
use super::{Store, StoreError, UserRecord};

/// Column widths of `users` (PostgreSQL enforces them).
const USERNAME_MAX_CHARS: usize = 32;
const NICKNAME_MAX_CHARS: usize = 64;
/// Usernames tried for one external user before giving up.
const MAX_USERNAME_ATTEMPTS: usize = 64;

/// Raises the users id sequence to MAX(id), never lowering it (a concurrent
/// registration may hold a higher, not yet committed id).
const PG_BUMP_USERS_SEQUENCE: &str = "SELECT setval(pg_get_serial_sequence('users', 'id'), t.m) \
     FROM (SELECT MAX(id) AS m FROM users) t \
     WHERE t.m > COALESCE(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0)";

/// At most `max` characters of `s`.
fn truncate_chars(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

impl Store {
    /// A user first seen through a JWT minted elsewhere: returns the existing
    /// row for `id`, or creates it with that explicit id, the claimed
    /// `username` if valid (1..=32 characters) and free, else `user{id}`,
    /// else `user{id}_{n}`; nickname = claim (cut to 64 characters) or the
    /// username; no password. Concurrent calls for one id all return the
    /// same row. On PostgreSQL the id sequence is raised past the new id in
    /// the same transaction, so later registrations do not collide.
    pub async fn ensure_external_user(
        &self,
        id: UserId,
        username: Option<&str>,
        nickname: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<UserRecord, StoreError> {
        if let Some(existing) = self.find_user(id).await? {
            return Ok(existing);
        }
        let claim = username.filter(|u| !u.is_empty() && u.chars().count() <= USERNAME_MAX_CHARS);
        let fallback = format!("user{}", id.0);
        let candidates = claim
            .map(str::to_owned)
            .into_iter()
            .chain(std::iter::once(fallback.clone()))
            .chain((1..).map(|n| format!("{fallback}_{n}")))
            .take(MAX_USERNAME_ATTEMPTS);

        for candidate in candidates {
            if self.find_user_by_username(&candidate).await?.is_some() {
                continue;
            }
            let nick = match nickname {
                Some(n) if !n.is_empty() => truncate_chars(n, NICKNAME_MAX_CHARS).to_owned(),
                _ => candidate.clone(),
            };
            match self.insert_external_user(id, candidate, nick, now).await {
                Ok(created) => return Ok(created),
                // Either the id was created concurrently (return that row) or
                // the username was just taken (try the next one).
                Err(StoreError::Conflict) => {
                    if let Some(existing) = self.find_user(id).await? {
                        return Ok(existing);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Other(format!(
            "no free username for external user {id}"
        )))
    }

    async fn insert_external_user(
        &self,
        id: UserId,
        username: String,
        nickname: String,
        now: DateTime<Utc>,
    ) -> Result<UserRecord, StoreError> {
        let row = user::ActiveModel {
            id: Set(id.0),
            username: Set(username),
            password_hash: Set(None),
            nickname: Set(nickname),
            is_online: Set(false),
            last_seen: Set(None),
            created_at: Set(now),
            deleted_at: Set(None),
        };
        let txn = self.db.begin().await?;
        let created = user::Entity::insert(row).exec_with_returning(&txn).await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_unprepared(PG_BUMP_USERS_SEQUENCE).await?;
        }
        txn.commit().await?;
        Ok(created.into())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{backends, now_ms};
    use super::*;

    #[tokio::test]
    async fn external_users() {
        for t in backends(4).await {
            let s = &t.store;
            let now = now_ms();
            let ext = s
                .ensure_external_user(UserId(500), Some("carol"), None, now)
                .await
                .unwrap();
            assert_eq!(
                (ext.id, ext.username.as_str(), ext.nickname.as_str()),
                (UserId(500), "carol", "carol")
            );
            assert_eq!(ext.password_hash, None);
            // Idempotent, even with different claims.
            let again = s
                .ensure_external_user(UserId(500), Some("x"), Some("X"), now_ms())
                .await
                .unwrap();
            assert_eq!(again, ext);
            // Registrations after an explicit id do not collide with it.
            let reg = s.create_user("dave", "h", "Dave", now).await.unwrap();
            assert!(reg.id.0 > 500, "{}: got {}", t.label, reg.id);
            // Claimed username taken -> user{id}; that taken too -> user{id}_1.
            let e2 = s
                .ensure_external_user(UserId(42), Some("dave"), Some("D"), now)
                .await
                .unwrap();
            assert_eq!(
                (e2.username.as_str(), e2.nickname.as_str()),
                ("user42", "D")
            );
            s.create_user("user43", "h", "squatter", now).await.unwrap();
            let e3 = s
                .ensure_external_user(UserId(43), Some("dave"), None, now)
                .await
                .unwrap();
            assert_eq!(
                (e3.username.as_str(), e3.nickname.as_str()),
                ("user43_1", "user43_1")
            );
            // Over-long claims are not used as username; nickname is cut.
            let long = "n".repeat(100);
            let e4 = s
                .ensure_external_user(UserId(44), Some(&long), Some(&long), now)
                .await
                .unwrap();
            assert_eq!((e4.username.as_str(), e4.nickname.len()), ("user44", 64));
            // Concurrent first sightings of one id all get the same row.
            let calls = (0..8).map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.ensure_external_user(
                        UserId(7000),
                        Some(&format!("racer{}", i % 2)),
                        None,
                        now,
                    )
                    .await
                })
            });
            let rows: Vec<_> = futures_util::future::join_all(calls)
                .await
                .into_iter()
                .map(|r| r.unwrap().unwrap())
                .collect();
            assert!(
                rows.iter().all(|r| r == &rows[0] && r.id == UserId(7000)),
                "{rows:?}"
            );
            let next = s.create_user("erin", "h", "Erin", now).await.unwrap();
            assert!(next.id.0 > 7000, "{}: got {}", t.label, next.id);
            t.cleanup().await;
        }
    }
}
