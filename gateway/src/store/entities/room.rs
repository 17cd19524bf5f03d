//! Entity of `rooms` (see migration `m20261126_000002_create_rooms`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rooms")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub is_private: bool,
    /// NULL once the owner is deleted (ON DELETE SET NULL).
    pub owner_id: Option<i64>,
    /// Per-room message sequence counter; see `Store::insert_message`.
    pub last_seq: i64,
    pub created_at: DateTimeUtc,
    /// 'room' or 'dm' (migration `m20261205_000011_add_direct_messages`).
    pub kind: String,
    /// A direct-message room's two users, "<lower id>:<higher id>"; unique.
    pub dm_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
