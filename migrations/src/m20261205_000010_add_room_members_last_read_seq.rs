//! Adds `room_members.last_read_seq`: the newest `seq` of the room the member
//! has read (read markers and unread counts). Members that exist when it is
//! applied start with everything read, so that an upgrade does not light up
//! every room's history as unread.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoomMembers {
    Table,
    LastReadSeq,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = big_integer(RoomMembers::LastReadSeq)
            .default(0i64)
            .to_owned();
        crate::add_column(manager, RoomMembers::Table, column).await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE room_members SET last_read_seq = \
                 (SELECT last_seq FROM rooms WHERE rooms.id = room_members.room_id)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_column(manager, RoomMembers::Table, RoomMembers::LastReadSeq).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
