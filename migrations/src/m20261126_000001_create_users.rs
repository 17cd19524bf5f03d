//! Creates `users`: one row per account. Accounts registered through the
//! gateway carry an argon2 `password_hash`; accounts first seen through a JWT
//! minted by another service have none (NULL) and keep the id of their `sub`
//! claim. `username` is unique; `is_online` / `last_seen` hold coarse
//! presence persisted for offline queries.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    Nickname,
    IsOnline,
    LastSeen,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    .col(string_len_uniq(Users::Username, 32))
                    .col(text_null(Users::PasswordHash))
                    .col(string_len(Users::Nickname, 64))
                    .col(boolean(Users::IsOnline).default(false))
                    .col(timestamp_with_time_zone_null(Users::LastSeen))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_table(manager, Users::Table).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
