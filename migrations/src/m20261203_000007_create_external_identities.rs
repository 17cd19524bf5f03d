//! Creates `external_identities`: a user known to an external identity
//! provider, `(iss, sub)` as its tokens name it, mapped to a local user
//! whose id comes from the local sequence. (Before, an external token's
//! `sub` became the local id itself, and a huge one broke every later
//! registration.) A row goes with its user.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ExternalIdentities {
    Table,
    Iss,
    Sub,
    UserId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let key = [ExternalIdentities::Iss, ExternalIdentities::Sub];
        let mut user = crate::foreign_key(
            ExternalIdentities::Table,
            ExternalIdentities::UserId,
            Users::Table,
            ForeignKeyAction::Cascade,
        );
        manager
            .create_table(
                Table::create()
                    .table(ExternalIdentities::Table)
                    .col(string_len(ExternalIdentities::Iss, 255))
                    .col(string_len(ExternalIdentities::Sub, 255))
                    .col(big_integer(ExternalIdentities::UserId).unique_key())
                    .col(timestamp_with_time_zone(ExternalIdentities::CreatedAt))
                    .primary_key(&mut crate::primary_key(ExternalIdentities::Table, key))
                    .foreign_key(&mut user)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_table(manager, ExternalIdentities::Table).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
