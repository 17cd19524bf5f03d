//! Creates `messages`: the stored chat history. `seq` is the per-room
//! sequence number handed out from `rooms.last_seq`; UNIQUE (room_id, seq)
//! makes a duplicate sequence impossible even if a caller bypassed that
//! counter. The (room_id, id) index serves newest-first history pages
//! (`WHERE room_id = ? AND id < ? ORDER BY id DESC LIMIT n`).
//! `client_msg_id` is the client's optional idempotency/echo token.
//! Messages vanish with their room or their author.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    RoomId,
    UserId,
    Seq,
    Content,
    ClientMsgId,
    CreatedAt,
}

const ROOM_SEQ_UNIQUE: &str = "uq_messages_room_id_seq";
const ROOM_ID_INDEX: &str = "idx_messages_room_id_id";
const USER_ID_INDEX: &str = "idx_messages_user_id";
const CLIENT_MSG_ID_UNIQUE: &str = "uq_messages_user_id_client_msg_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let [mut room, mut user] = crate::room_and_user_keys(Messages::Table);
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(big_pk_auto(Messages::Id))
                    .col(big_integer(Messages::RoomId))
                    .col(big_integer(Messages::UserId))
                    .col(big_integer(Messages::Seq))
                    .col(text(Messages::Content))
                    .col(string_len_null(Messages::ClientMsgId, 64))
                    .col(timestamp_with_time_zone(Messages::CreatedAt))
                    .foreign_key(&mut room)
                    .foreign_key(&mut user)
                    .to_owned(),
            )
            .await?;
        let indexes = [
            (ROOM_SEQ_UNIQUE, vec![Messages::RoomId, Messages::Seq], true),
            (ROOM_ID_INDEX, vec![Messages::RoomId, Messages::Id], false),
            // Deleting a user cascades to their messages: without this index
            // PostgreSQL would scan the whole table for it.
            (USER_ID_INDEX, vec![Messages::UserId], false),
            // Idempotent sends: one message per (sender, client_msg_id). NULLs
            // are distinct on both backends, so messages without an id are free.
            (
                CLIENT_MSG_ID_UNIQUE,
                vec![Messages::UserId, Messages::ClientMsgId],
                true,
            ),
        ];
        for (name, columns, unique) in indexes {
            crate::create_index(manager, name, Messages::Table, columns, unique).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the table drops its indexes on both backends.
        crate::drop_table(manager, Messages::Table).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
