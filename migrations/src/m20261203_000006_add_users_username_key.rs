//! Adds `users.username_key`: the username as compared for uniqueness and
//! login, after Unicode NFKC and case folding, under a unique index, so
//! `Alice_x` and `alice_x` (or a full-width `Ａｌｉｃｅ`) can no longer be two
//! accounts, and a login accepts any case.
//!
//! Existing duplicates: the oldest account (lowest id) keeps its name; each
//! later one is renamed `{name}-{id}` (cut to fit 32 characters), which is a
//! valid username no one else has, and is logged with its old and new name
//! so an operator can tell its owner. Names that usernames refuse (created
//! from unchecked token claims before the claims were checked) keep their
//! row and get the same key treatment; the gateway no longer creates them.

use crate::m20261126_000001_create_users::Users;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::{prelude::*, schema::*};
use std::collections::HashSet;
use unicode_normalization::UnicodeNormalization;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Key {
    UsernameKey,
}

const INDEX: &str = "idx_users_username_key";

/// The comparison form of a username. The gateway's `Username::key` is the
/// same function; a migration keeps its own copy, frozen with it.
fn key(username: &str) -> String {
    username.trim().nfkc().collect::<String>().to_lowercase()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::add_column(manager, Users::Table, string_len_null(Key::UsernameKey, 64)).await?;
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id, username FROM users ORDER BY id",
            ))
            .await?;
        let mut taken = HashSet::new();
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            let mut name: String = row.try_get("", "username")?;
            let mut k = key(&name);
            if !taken.insert(k.clone()) {
                let suffix = format!("-{id}");
                let keep: String = name.chars().take(32 - suffix.len()).collect();
                let renamed = format!("{keep}{suffix}");
                println!(
                    "migration username_key: user {id} renamed {name:?} -> {renamed:?} (another account had the same name but for case)"
                );
                name = renamed;
                k = key(&name);
                taken.insert(k.clone());
            }
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm_migration::sea_orm::DbBackend::Postgres => {
                        "UPDATE users SET username = $1, username_key = $2 WHERE id = $3"
                    }
                    _ => "UPDATE users SET username = ?, username_key = ? WHERE id = ?",
                },
                [name.into(), k.into(), id.into()],
            ))
            .await?;
        }
        crate::create_index(manager, INDEX, Users::Table, [Key::UsernameKey], true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Users::Table).to_owned())
            .await?;
        crate::drop_column(manager, Users::Table, Key::UsernameKey).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn nfkc_and_case() {
        assert_eq!(key("Alice_x"), "alice_x");
        assert_eq!(key("ＡＬＩＣＥ"), "alice");
        assert_eq!(key(" bob "), "bob");
    }
}
