//! Entity of `messages` (see migration `m20261126_000004_create_messages`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub room_id: i64,
    pub user_id: i64,
    /// Per-room sequence number, unique with `room_id`.
    pub seq: i64,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    pub client_msg_id: Option<String>,
    pub created_at: DateTimeUtc,
    /// 'message', or an event row: 'edited' / 'deleted' (see migration
    /// `m20261206_000012_add_message_edits`).
    pub kind: String,
    /// The message an event row is about.
    pub target_id: Option<i64>,
    pub edited_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
