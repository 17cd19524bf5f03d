//! Entity of `external_identities` (see migration
//! `m20261203_000007_create_external_identities`): `(iss, sub)` → local user.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "external_identities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub iss: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub sub: String,
    #[sea_orm(unique)]
    pub user_id: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
