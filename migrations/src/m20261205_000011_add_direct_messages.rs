//! Direct messages: `rooms.kind` ('room' or 'dm') and `rooms.dm_key`, the
//! pair of users of a direct-message room ("<lower id>:<higher id>"), unique
//! so that two concurrent requests for the same pair create one room; and
//! `users.dm_policy` ('anyone' or 'shared_rooms'): who may open one with
//! the user.

use sea_orm_migration::{prelude::*, schema::*};

const DM_KEY_UNIQUE: &str = "idx_rooms_dm_key";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Kind,
    DmKey,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DmPolicy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Rooms::Table)
                    .add_column(string_len(Rooms::Kind, 16).default("room"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Rooms::Table)
                    .add_column(string_len_null(Rooms::DmKey, 48))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(DM_KEY_UNIQUE)
                    .table(Rooms::Table)
                    .col(Rooms::DmKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(string_len(Users::DmPolicy, 16).default("anyone"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(DM_KEY_UNIQUE)
                    .table(Rooms::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Rooms::Kind, Rooms::DmKey] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Rooms::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::DmPolicy)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
