//! Creates `room_bans`: a user kept out of a room (no join, no connect)
//! until `expires_at`, or for good when it is NULL. One row per (room,
//! user); rows go with their room or user. `banned_by` is who banned (NULL
//! once that account is gone).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_users::Users;
use crate::m20261126_000002_create_rooms::Rooms;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoomBans {
    Table,
    RoomId,
    UserId,
    BannedBy,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoomBans::Table)
                    .col(big_integer(RoomBans::RoomId))
                    .col(big_integer(RoomBans::UserId))
                    .col(big_integer_null(RoomBans::BannedBy))
                    .col(timestamp_with_time_zone(RoomBans::CreatedAt))
                    .col(timestamp_with_time_zone_null(RoomBans::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .name("pk_room_bans")
                            .col(RoomBans::RoomId)
                            .col(RoomBans::UserId),
                    )
                    .foreign_key(&mut crate::foreign_key(
                        "fk_room_bans_room_id",
                        (RoomBans::Table, RoomBans::RoomId),
                        (Rooms::Table, Rooms::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut crate::foreign_key(
                        "fk_room_bans_user_id",
                        (RoomBans::Table, RoomBans::UserId),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut crate::foreign_key(
                        "fk_room_bans_banned_by",
                        (RoomBans::Table, RoomBans::BannedBy),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::SetNull,
                    ))
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
