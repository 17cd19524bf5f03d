//! Adds `users.deleted_at`: an account deleted by its owner keeps its row (its
//! messages stay in the rooms' histories, attributed to "Deleted user"), but
//! every token for it is refused from then on, and a token minted elsewhere
//! for the same id cannot bring it back.

use crate::m20261126_000001_create_users::Users;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deleted {
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::add_column(
            manager,
            Users::Table,
            timestamp_with_time_zone_null(Deleted::DeletedAt),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_column(manager, Users::Table, Deleted::DeletedAt).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
