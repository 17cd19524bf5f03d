//! Creates `room_members`: who belongs to which room and with which role
//! ('owner' | 'admin' | 'member'). The composite primary key (room_id,
//! user_id) makes membership idempotent (`INSERT .. ON CONFLICT DO NOTHING`)
//! and serves per-room lookups; the extra index on user_id serves "rooms of a
//! user" and the cascade from `users`. Rows vanish with their room or user.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoomMembers {
    Table,
    UserId,
    Role,
    JoinedAt,
}

const USER_ID_INDEX: &str = "idx_room_members_user_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                crate::room_user_table(RoomMembers::Table)
                    .col(string_len(RoomMembers::Role, 16))
                    .col(timestamp_with_time_zone(RoomMembers::JoinedAt))
                    .to_owned(),
            )
            .await?;
        crate::create_index(
            manager,
            USER_ID_INDEX,
            RoomMembers::Table,
            [RoomMembers::UserId],
            false,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the table drops its indexes on both backends.
        crate::drop_table(manager, RoomMembers::Table).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
