//! Creates `rooms` and inserts the default public room 1 "general", which
//! every user may join and which the gateway assumes always exists.
//!
//! `last_seq` is the per-room message sequence counter: inserting a message
//! bumps it with `UPDATE .. RETURNING` in the same transaction, which gives
//! gap-free, strictly increasing `messages.seq` per room. `owner_id` becomes
//! NULL when the owning user is deleted (the room itself survives).
//!
//! Room 1 is inserted with an explicit id; on PostgreSQL the identity
//! sequence is then advanced so the next room gets id 2 (SQLite's
//! AUTOINCREMENT counter follows explicit ids by itself).

use chrono::{DurationRound, TimeDelta, Utc};
use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

use crate::m20261126_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Rooms {
    Table,
    Id,
    Name,
    Description,
    IsPrivate,
    OwnerId,
    LastSeq,
    CreatedAt,
}

/// Id of the default public room created here.
const GENERAL_ROOM_ID: i64 = 1;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Rooms::Table)
                    .col(big_pk_auto(Rooms::Id))
                    .col(string_len(Rooms::Name, 64))
                    .col(text(Rooms::Description).default(""))
                    .col(boolean(Rooms::IsPrivate).default(false))
                    .col(big_integer_null(Rooms::OwnerId))
                    .col(big_integer(Rooms::LastSeq).default(0i64))
                    .col(timestamp_with_time_zone(Rooms::CreatedAt))
                    .foreign_key(&mut crate::foreign_key(
                        Rooms::Table,
                        Rooms::OwnerId,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        // Same millisecond precision as the timestamps the gateway writes.
        let now = Utc::now();
        let now = now
            .duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or(now);
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Rooms::Table)
                    .columns([
                        Rooms::Id,
                        Rooms::Name,
                        Rooms::Description,
                        Rooms::IsPrivate,
                        Rooms::OwnerId,
                        Rooms::LastSeq,
                        Rooms::CreatedAt,
                    ])
                    .values_panic([
                        GENERAL_ROOM_ID.into(),
                        "general".into(),
                        "The default room".into(),
                        false.into(),
                        Option::<i64>::None.into(),
                        0i64.into(),
                        now.into(),
                    ])
                    .to_owned(),
            )
            .await?;

        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "SELECT setval(pg_get_serial_sequence('rooms', 'id'), (SELECT MAX(id) FROM rooms))",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_table(manager, Rooms::Table).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
