//! Drops `idx_messages_user_id`. The unique index on `(user_id,
//! client_msg_id)` holds every message (NULL ids included) and leads with
//! `user_id`, so it already serves the lookups by sender that index was made
//! for (deleting an account's messages); the second one only cost a B-tree
//! insert per stored message (BENCHMARKS.md, session 9).

use sea_orm_migration::prelude::*;

const USER_ID_INDEX: &str = "idx_messages_user_id";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    UserId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(USER_ID_INDEX)
                    .table(Messages::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_index(
            manager,
            USER_ID_INDEX,
            Messages::Table,
            [Messages::UserId],
            false,
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
