//! Entity of `room_members` (see migration
//! `m20261126_000003_create_room_members`): composite key (room_id, user_id).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub room_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    /// 'owner' | 'admin' | 'member'
    pub role: String,
    pub joined_at: DateTimeUtc,
    /// The newest `seq` of the room the member has read (migration
    /// `m20261205_000010_add_room_members_last_read_seq`).
    pub last_read_seq: i64,
}

/// The member's user, which `Store::members` joins for names.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl ActiveModelBehavior for ActiveModel {}
