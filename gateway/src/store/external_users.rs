//! Users first seen through a JWT minted by another service, created on
//! first sight with no password:
//! - by local id ([`Store::ensure_local_user`]): a token without `iss` (or
//!   with the gateway's own) names the id itself, bounded by
//!   `auth::token::MAX_LOCAL_ID`; the id sequence is raised past it;
//! - by `(iss, sub)` ([`Store::ensure_external_identity`]): an external
//!   issuer's token gets a local user with an id from the sequence, linked
//!   through `external_identities`.
//!
//! The claims go through the registration rules: the username claim is
//! cleaned (`Username::from_claim`) and used if valid and free, else
//! `user{id}`, else `user{id}_{n}`; the nickname claim likewise, else the
//! username.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
};
use shared::ids::UserId;

use super::entities::{external_identity, user};
use super::{Store, StoreError, UserRecord};
use crate::domain::{Nickname, Username};
use sea_orm::sea_query::Expr;

/// Who an external issuer's token names: the issuer and its subject, with
/// the names its claims suggest for a user made on first sight.
#[derive(Debug, Clone, Copy)]
pub struct ExternalIdentity<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub username: Option<&'a str>,
    pub nickname: Option<&'a str>,
}

/// Usernames tried for one user before giving up.
const MAX_USERNAME_ATTEMPTS: usize = 64;

/// Raises the users id sequence to MAX(id), never lowering it (a concurrent
/// registration may hold a higher, not yet committed id).
const PG_BUMP_USERS_SEQUENCE: &str = "SELECT setval(pg_get_serial_sequence('users', 'id'), t.m) \
     FROM (SELECT MAX(id) AS m FROM users) t \
     WHERE t.m > COALESCE(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0)";

/// The usernames to try, in order: the cleaned claim, `{fallback}`, `{fallback}_1`, ...
fn candidates(claim: Option<&str>, fallback: String) -> impl Iterator<Item = String> {
    claim
        .and_then(Username::from_claim)
        .map(|u| u.as_str().to_owned())
        .into_iter()
        .chain(std::iter::once(fallback.clone()))
        .chain((1..).map(move |n| format!("{fallback}_{n}")))
        .take(MAX_USERNAME_ATTEMPTS)
}

fn nickname(claim: Option<&str>, username: &str) -> String {
    claim
        .and_then(Nickname::from_claim)
        .map_or_else(|| username.to_owned(), |n| n.as_str().to_owned())
}

fn new_user(
    id: Option<UserId>,
    username: String,
    nickname: String,
    now: DateTime<Utc>,
) -> user::ActiveModel {
    user::ActiveModel {
        id: id.map_or(NotSet, |id| Set(id.0)),
        username_key: Set(Some(Username::key(&username))),
        username: Set(username),
        password_hash: Set(None),
        nickname: Set(nickname),
        is_online: Set(false),
        last_seen: Set(None),
        created_at: Set(now),
        deleted_at: Set(None),
        dm_policy: NotSet,
    }
}

impl Store {
    /// The user with local id `id`, created from the claims if it does not
    /// exist yet. Concurrent calls for one id all return the same row. On
    /// PostgreSQL the id sequence is raised past the new id in the same
    /// transaction, so later registrations do not collide. Meant for a
    /// caller that just looked the id up and found nothing: an existing
    /// user is found through the insert's conflict, one round trip more.
    pub async fn ensure_local_user(
        &self,
        id: UserId,
        username: Option<&str>,
        nickname_claim: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<UserRecord, StoreError> {
        // A taken name or id shows as a conflict on the insert itself (no
        // read before it: most names are free, and the writer is the
        // bottleneck of a burst of new users).
        for candidate in candidates(username, format!("user{}", id.0)) {
            let nick = nickname(nickname_claim, &candidate);
            match self
                .insert_local_user(new_user(Some(id), candidate, nick, now))
                .await
            {
                Ok(created) => return Ok(created),
                // Either the id was created concurrently (return that row) or
                // the username was just taken (try the next one).
                Err(StoreError::Conflict) => {
                    if let Some(existing) = self.find_user(id).await? {
                        return Ok(existing);
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Other(format!("no free username for user {id}")))
    }

    /// Insert a user row with its id given. On PostgreSQL the id sequence
    /// is raised past it in the same transaction; SQLite needs no
    /// transaction (one statement, its own commit).
    async fn insert_local_user(&self, row: user::ActiveModel) -> Result<UserRecord, StoreError> {
        if self.writer.get_database_backend() != DbBackend::Postgres {
            let created = user::Entity::insert(row)
                .exec_with_returning(&self.writer)
                .await?;
            return Ok(created.into());
        }
        let txn = self.begin_write().await?;
        let created = user::Entity::insert(row).exec_with_returning(&txn).await?;
        txn.execute_unprepared(PG_BUMP_USERS_SEQUENCE).await?;
        txn.commit().await?;
        Ok(created.into())
    }

    /// The local user linked to `(iss, sub)`, created (with an id from the
    /// sequence) and linked on first sight. Concurrent first sightings all
    /// return the same user: the one whose link went in first.
    pub async fn ensure_external_identity(
        &self,
        who: ExternalIdentity<'_>,
        now: DateTime<Utc>,
    ) -> Result<UserRecord, StoreError> {
        for _ in 0..MAX_USERNAME_ATTEMPTS {
            if let Some(user) = self.identity_user(who.iss, who.sub).await? {
                return Ok(user);
            }
            // A conflict: the same identity linked concurrently, or the
            // chosen name taken meanwhile. Either way, look again.
            match self.link_new_user(who, now).await {
                Err(StoreError::Conflict) => continue,
                done => return done,
            }
        }
        Err(StoreError::Other(format!(
            "could not link {} {}",
            who.iss, who.sub
        )))
    }

    /// One attempt: a new user, named, and its link, in one transaction.
    async fn link_new_user(
        &self,
        who: ExternalIdentity<'_>,
        now: DateTime<Utc>,
    ) -> Result<UserRecord, StoreError> {
        // The fallback name needs the id: a placeholder no username can be
        // (':' is refused) until the row has one.
        let placeholder = format!("pending:{:016x}", rand::random::<u64>());
        let txn = self.begin_write().await?;
        let created = user::Entity::insert(new_user(None, placeholder, String::new(), now))
            .exec_with_returning(&txn)
            .await?;
        let id = UserId(created.id);
        let mut named = None;
        for candidate in candidates(who.username, format!("user{}", id.0)) {
            let taken = user::Entity::find()
                .filter(user::Column::UsernameKey.eq(Username::key(&candidate)))
                .one(&txn)
                .await?
                .is_some();
            if !taken {
                named = Some(candidate);
                break;
            }
        }
        let Some(name) = named else {
            return Err(StoreError::Other(format!("no free username for user {id}")));
        };
        let nick = nickname(who.nickname, &name);
        user::Entity::update_many()
            .col_expr(user::Column::UsernameKey, Expr::value(Username::key(&name)))
            .col_expr(user::Column::Username, Expr::value(name))
            .col_expr(user::Column::Nickname, Expr::value(nick))
            .filter(user::Column::Id.eq(id.0))
            .exec(&txn)
            .await?;
        let link = external_identity::ActiveModel {
            iss: Set(who.iss.to_owned()),
            sub: Set(who.sub.to_owned()),
            user_id: Set(id.0),
            created_at: Set(now),
        };
        external_identity::Entity::insert(link).exec(&txn).await?;
        txn.commit().await?;
        tracing::info!(user_id = %id, "user first seen through an external issuer's token");
        self.find_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn identity_user(&self, iss: &str, sub: &str) -> Result<Option<UserRecord>, StoreError> {
        let link = external_identity::Entity::find_by_id((iss.to_owned(), sub.to_owned()))
            .one(&self.db)
            .await?;
        match link {
            Some(link) => self.find_user(UserId(link.user_id)).await,
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at_once, backends, now_ms, user};
    use super::*;

    #[tokio::test]
    async fn users_first_seen_by_local_id() {
        for t in backends(4).await {
            let s = &t.store;
            let now = now_ms();
            let ext = s
                .ensure_local_user(UserId(500), Some("carol"), None, now)
                .await
                .unwrap();
            assert_eq!(
                (ext.id, ext.username.as_str(), ext.nickname.as_str()),
                (UserId(500), "carol", "carol")
            );
            assert_eq!(ext.password_hash, None);
            // Idempotent, even with different claims.
            let again = s
                .ensure_local_user(UserId(500), Some("x"), Some("X"), now_ms())
                .await
                .unwrap();
            assert_eq!(again, ext);
            // Registrations after an explicit id do not collide with it.
            let reg = user(s, "dave").await;
            assert!(reg.id.0 > 500, "{}: got {}", t.label, reg.id);
            // The (username, nickname) that a first sighting of `id` with
            // these claims gets.
            let claimed = async |id, username: Option<&str>, nickname: Option<&str>, want| {
                let u = s
                    .ensure_local_user(UserId(id), username, nickname, now)
                    .await
                    .unwrap();
                assert_eq!(
                    (u.username.as_str(), u.nickname.as_str()),
                    want,
                    "{}",
                    t.label
                );
            };
            // Claimed username taken (in any case) -> user{id}; that taken too -> user{id}_1.
            claimed(42, Some("DAVE"), Some("D"), ("user42", "D")).await;
            user(s, "user43").await;
            claimed(43, Some("dave"), None, ("user43_1", "user43_1")).await;
            // Claims through the registration rules: cleaned, else the fallback.
            let (admin, boss) = ("<b>Admin</b> ", "\u{1b}[1mBoss\u{7}\u{202E}");
            claimed(44, Some(admin), Some(boss), ("user44", "[1mBoss")).await;
            claimed(45, Some(" erin\u{0} "), Some("\u{200B}"), ("erin", "erin")).await;
            // Concurrent first sightings of one id all get the same row.
            let rows = at_once(s, 8, |s, i| async move {
                let name = format!("racer{}", i % 2);
                s.ensure_local_user(UserId(7000), Some(&name), None, now)
                    .await
                    .unwrap()
            })
            .await;
            assert!(
                rows.iter().all(|r| r == &rows[0] && r.id == UserId(7000)),
                "{rows:?}"
            );
            let next = user(s, "frank").await;
            assert!(next.id.0 > 7000, "{}: got {}", t.label, next.id);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn external_identities_get_ids_of_their_own() {
        for t in backends(4).await {
            let s = &t.store;
            let now = now_ms();
            let reg = user(s, "first").await;
            let a = s
                .ensure_external_identity(
                    external("https://idp", "9223372036854775807", "ann"),
                    now,
                )
                .await
                .unwrap();
            assert_eq!(a.username, "ann");
            assert!(
                a.id.0 > reg.id.0 && a.id.0 < 1000,
                "{}: from the sequence: {}",
                t.label,
                a.id
            );
            let again = s
                .ensure_external_identity(external("https://idp", "9223372036854775807", "x"), now)
                .await
                .unwrap();
            assert_eq!(again.id, a.id);
            // The same sub from another issuer is someone else; a taken name falls back.
            let b = s
                .ensure_external_identity(
                    external("https://other", "9223372036854775807", "Ann"),
                    now,
                )
                .await
                .unwrap();
            assert_ne!(b.id, a.id);
            assert_eq!(b.username, format!("user{}", b.id));
            // Registrations carry on from the sequence.
            let next = user(s, "second").await;
            assert!(next.id.0 > b.id.0);
            let rows = at_once(s, 8, |s, _| async move {
                s.ensure_external_identity(external("https://idp", "race", "racer"), now)
                    .await
                    .unwrap()
            })
            .await;
            assert!(rows.iter().all(|r| r.id == rows[0].id), "{rows:?}");
            t.cleanup().await;
        }
    }

    /// An identity whose token suggests `username` and no nickname.
    fn external(
        iss: &'static str,
        sub: &'static str,
        username: &'static str,
    ) -> ExternalIdentity<'static> {
        ExternalIdentity {
            iss,
            sub,
            username: Some(username),
            nickname: None,
        }
    }
}
