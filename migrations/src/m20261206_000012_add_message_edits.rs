//! Edits and deletions as part of a room's ordered stream: `messages.kind`
//! ('message', or 'edited' / 'deleted' for an event row that takes the room's
//! next `seq` like a message, so that a client resuming with `since_seq`
//! learns of it in order), `messages.target_id` (the message an event row is
//! about), and on the message itself `edited_at` and `deleted_at` (a deleted
//! message stays as a tombstone: its `seq` keeps its place, its content is
//! gone).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    Kind,
    TargetId,
    EditedAt,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let kind = string_len(Messages::Kind, 16).default("message").to_owned();
        crate::add_column(manager, Messages::Table, kind).await?;
        crate::add_column(
            manager,
            Messages::Table,
            big_integer_null(Messages::TargetId),
        )
        .await?;
        for column in [Messages::EditedAt, Messages::DeletedAt] {
            crate::add_column(
                manager,
                Messages::Table,
                timestamp_with_time_zone_null(column),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Messages::Kind,
            Messages::TargetId,
            Messages::EditedAt,
            Messages::DeletedAt,
        ] {
            crate::drop_column(manager, Messages::Table, column).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
