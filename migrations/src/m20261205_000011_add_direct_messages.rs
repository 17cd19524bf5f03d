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
        let kind = string_len(Rooms::Kind, 16).default("room").to_owned();
        crate::add_column(manager, Rooms::Table, kind).await?;
        crate::add_column(manager, Rooms::Table, string_len_null(Rooms::DmKey, 48)).await?;
        crate::create_index(manager, DM_KEY_UNIQUE, Rooms::Table, [Rooms::DmKey], true).await?;
        let policy = string_len(Users::DmPolicy, 16).default("anyone").to_owned();
        crate::add_column(manager, Users::Table, policy).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let index = Index::drop()
            .name(DM_KEY_UNIQUE)
            .table(Rooms::Table)
            .to_owned();
        manager.drop_index(index).await?;
        for column in [Rooms::Kind, Rooms::DmKey] {
            crate::drop_column(manager, Rooms::Table, column).await?;
        }
        crate::drop_column(manager, Users::Table, Users::DmPolicy).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
