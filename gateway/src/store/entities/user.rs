//! Entity of `users` (see migration `m20261126_000001_create_users`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub username: String,
    /// `Username::key(username)`: unique (migration `m20261203_000006`);
    /// logins and the "taken" check compare this.
    pub username_key: Option<String>,
    /// NULL for users created from an external JWT.
    #[sea_orm(column_type = "Text", nullable)]
    pub password_hash: Option<String>,
    pub nickname: String,
    pub is_online: bool,
    pub last_seen: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// Set when the owner deleted the account (migration `m20261126_000005`).
    pub deleted_at: Option<DateTimeUtc>,
    /// 'anyone' or 'shared_rooms' (migration `m20261205_000011_add_direct_messages`).
    pub dm_policy: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
