//! Creates `room_members`: who belongs to which room and with which role
//! ('owner' | 'admin' | 'member'). The composite primary key (room_id,
//! user_id) makes membership idempotent (`INSERT .. ON CONFLICT DO NOTHING`)
//! and serves per-room lookups; the extra index on user_id serves "rooms of a
//! user" and the cascade from `users`. Rows vanish with their room or user.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_users::Users;
use crate::m20261126_000002_create_rooms::Rooms;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoomMembers {
    Table,
    RoomId,
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
                Table::create()
                    .table(RoomMembers::Table)
                    .col(big_integer(RoomMembers::RoomId))
                    .col(big_integer(RoomMembers::UserId))
                    .col(string_len(RoomMembers::Role, 16))
                    .col(timestamp_with_time_zone(RoomMembers::JoinedAt))
                    .primary_key(
                        Index::create()
                            .name("pk_room_members")
                            .col(RoomMembers::RoomId)
                            .col(RoomMembers::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_room_members_room_id")
                            .from(RoomMembers::Table, RoomMembers::RoomId)
                            .to(Rooms::Table, Rooms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_room_members_user_id")
                            .from(RoomMembers::Table, RoomMembers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(USER_ID_INDEX)
                    .table(RoomMembers::Table)
                    .col(RoomMembers::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the table drops its indexes on both backends.
        manager
            .drop_table(Table::drop().table(RoomMembers::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
