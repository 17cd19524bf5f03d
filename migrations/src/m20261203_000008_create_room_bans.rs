//! Creates `room_bans`: a user kept out of a room (no join, no connect)
//! until `expires_at`, or for good when it is NULL. One row per (room,
//! user); rows go with their room or user. `banned_by` is who banned (NULL
//! once that account is gone).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoomBans {
    Table,
    BannedBy,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Who banned: kept as NULL once that account is gone.
        let mut banned_by = crate::foreign_key(
            RoomBans::Table,
            RoomBans::BannedBy,
            Users::Table,
            ForeignKeyAction::SetNull,
        );
        manager
            .create_table(
                crate::room_user_table(RoomBans::Table)
                    .col(big_integer_null(RoomBans::BannedBy))
                    .col(timestamp_with_time_zone(RoomBans::CreatedAt))
                    .col(timestamp_with_time_zone_null(RoomBans::ExpiresAt))
                    .foreign_key(&mut banned_by)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_table(manager, RoomBans::Table).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
