//! Deleting an account. The row stays (its messages keep their author id,
//! shown as "Deleted user"), renamed so the username is free again and with
//! no password (`deleted:{id}`, a name no one can register first); its memberships go, and rooms it owned lose their owner
//! (their admins keep managing them). `users.deleted_at` marks it, so every
//! token for it is refused and a token minted elsewhere cannot recreate it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
use shared::ids::{RoomId, UserId};

use super::entities::{room, room_member, user};
use super::{Store, StoreError};

/// The nickname a deleted account's messages show.
pub const DELETED_NICKNAME: &str = "Deleted user";

/// What a deleted account is renamed to, freeing its name: a form no
/// username can take (':' is refused), so no one can claim it first and
/// block the deletion (`deleted_{id}` could be registered by anyone).
fn freed_name(id: UserId) -> String {
    format!("deleted:{}", id.0)
}

impl Store {
    /// Delete `id`'s account; returns the rooms it was a member of (to tell
    /// its open connections). `StoreError::NotFound` if there is no such
    /// account or it is already deleted.
    pub async fn delete_user(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<RoomId>, StoreError> {
        let txn = self.writer.begin().await?;
        let marked = user::Entity::update_many()
            .col_expr(user::Column::Username, Expr::value(freed_name(id)))
            .col_expr(user::Column::UsernameKey, Expr::value(freed_name(id)))
            .col_expr(user::Column::Nickname, Expr::value(DELETED_NICKNAME))
            .col_expr(
                user::Column::PasswordHash,
                Expr::value(Option::<String>::None),
            )
            .col_expr(user::Column::IsOnline, Expr::value(false))
            .col_expr(user::Column::DeletedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id.0))
            .filter(user::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if marked.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        let rooms: Vec<i64> = room_member::Entity::find()
            .select_only()
            .column(room_member::Column::RoomId)
            .filter(room_member::Column::UserId.eq(id.0))
            .into_tuple()
            .all(&txn)
            .await?;
        room_member::Entity::delete_many()
            .filter(room_member::Column::UserId.eq(id.0))
            .exec(&txn)
            .await?;
        room::Entity::update_many()
            .col_expr(room::Column::OwnerId, Expr::value(Option::<i64>::None))
            .filter(room::Column::OwnerId.eq(id.0))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(rooms.into_iter().map(RoomId).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{backends, now_ms, room, user};
    use super::*;

    #[tokio::test]
    async fn a_deleted_account_keeps_its_row_and_frees_its_name() {
        for t in backends(2).await {
            let s = &t.store;
            let now = now_ms();
            let u = user(s, "gone").await;
            let room = room(s, "mine", u.id).await;
            s.add_member(RoomId(1), u.id, "member", now).await.unwrap();
            let mut rooms = s.delete_user(u.id, now).await.unwrap();
            rooms.sort();
            assert_eq!(rooms, vec![RoomId(1), room], "{}", t.label);
            let row = s.find_user(u.id).await.unwrap().expect("row kept");
            assert!(row.deleted);
            assert_eq!(row.nickname, DELETED_NICKNAME);
            assert_eq!(row.password_hash, None);
            assert_eq!(s.member_role(RoomId(1), u.id).await.unwrap(), None);
            assert_eq!(s.find_room(room).await.unwrap().unwrap().owner_id, None);
            s.create_user("gone", "h", "New", now)
                .await
                .expect("the name is free");
            assert!(matches!(
                s.delete_user(u.id, now).await,
                Err(StoreError::NotFound)
            ));
            t.cleanup().await;
        }
    }
}
