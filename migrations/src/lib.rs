//! Database schema of chat-gateway as sea-orm-migration migrations.
//!
//! One migration per file; a migration's name is its file name, so files must
//! never be renamed once released. The same migrations run on SQLite and
//! PostgreSQL. Every migration opts into a transaction on both backends
//! (sea-orm-migration only wraps them on PostgreSQL by default), so a
//! migration that fails half way leaves nothing behind on SQLite either.
//!
//! There is no CLI here: the gateway binary applies them (`gateway migrate`,
//! i.e. `Store::migrate`, which runs `Migrator::up(.., None)` inside one
//! locked transaction so that several nodes may start at once).

pub use sea_orm_migration;

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::big_integer;

use m20261126_000001_create_users::Users;
use m20261126_000002_create_rooms::Rooms;

mod m20261126_000001_create_users;
mod m20261126_000002_create_rooms;
mod m20261126_000003_create_room_members;
mod m20261126_000004_create_messages;
mod m20261126_000005_add_users_deleted_at;
mod m20261203_000006_add_users_username_key;
mod m20261203_000007_create_external_identities;
mod m20261203_000008_create_room_bans;
mod m20261204_000009_drop_messages_user_id_index;
mod m20261205_000010_add_room_members_last_read_seq;
mod m20261205_000011_add_direct_messages;
mod m20261206_000012_add_message_edits;
mod m20261206_000013_add_messages_unread_index;

/// All migrations of the chat-gateway schema, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_users::Migration),
            Box::new(m20261126_000002_create_rooms::Migration),
            Box::new(m20261126_000003_create_room_members::Migration),
            Box::new(m20261126_000004_create_messages::Migration),
            Box::new(m20261126_000005_add_users_deleted_at::Migration),
            Box::new(m20261203_000006_add_users_username_key::Migration),
            Box::new(m20261203_000007_create_external_identities::Migration),
            Box::new(m20261203_000008_create_room_bans::Migration),
            Box::new(m20261204_000009_drop_messages_user_id_index::Migration),
            Box::new(m20261205_000010_add_room_members_last_read_seq::Migration),
            Box::new(m20261205_000011_add_direct_messages::Migration),
            Box::new(m20261206_000012_add_message_edits::Migration),
            Box::new(m20261206_000013_add_messages_unread_index::Migration),
        ]
    }
}

/// `FOREIGN KEY (column) REFERENCES to (id) ON DELETE on_delete` of `table`,
/// named `fk_{table}_{column}`: every key of this schema points at an `id`
/// and is named so.
fn foreign_key(
    table: impl IntoIden,
    column: impl IntoIden,
    to: impl IntoIden,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    let (table, column) = (table.into_iden(), column.into_iden());
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(to, "id")
        .on_delete(on_delete)
        .to_owned()
}

/// The keys of a row that belongs to a room and a user (a membership, a
/// message, a ban): its `room_id` and `user_id`, cascading, so that it goes
/// with either.
fn room_and_user_keys(table: impl IntoIden) -> [ForeignKeyCreateStatement; 2] {
    let table = table.into_iden();
    let cascade = ForeignKeyAction::Cascade;
    [
        foreign_key(table.clone(), "room_id", Rooms::Table, cascade),
        foreign_key(table, "user_id", Users::Table, cascade),
    ]
}

/// `CREATE TABLE table` begun for a row per room and user (a membership, a
/// ban): the columns `room_id` and `user_id` first, the primary key
/// `pk_{table}` on them and their [`room_and_user_keys`]. The caller adds
/// the other columns and keys.
fn room_user_table(table: impl IntoIden) -> TableCreateStatement {
    let table = table.into_iden();
    let [mut room, mut user] = room_and_user_keys(table.clone());
    Table::create()
        .table(table.clone())
        .col(big_integer("room_id"))
        .col(big_integer("user_id"))
        .primary_key(&mut primary_key(table, ["room_id", "user_id"]))
        .foreign_key(&mut room)
        .foreign_key(&mut user)
        .to_owned()
}

/// `PRIMARY KEY (columns)` of `table`, named `pk_{table}`.
fn primary_key<C: IntoIden>(
    table: impl IntoIden,
    columns: impl IntoIterator<Item = C>,
) -> IndexCreateStatement {
    index(&format!("pk_{}", table.into_iden()), columns)
}

/// `CREATE [UNIQUE] INDEX name ON table (columns)`.
async fn create_index<C: IntoIden>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    columns: impl IntoIterator<Item = C>,
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = index(name, columns);
    index.table(table);
    if unique {
        index.unique();
    }
    manager.create_index(index).await
}

/// An index named `name` on `columns`, in that order: what a primary key
/// and an index are made of.
fn index<C: IntoIden>(name: &str, columns: impl IntoIterator<Item = C>) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name);
    for column in columns {
        index.col(column);
    }
    index
}

/// `DROP TABLE table` (its indexes go with it on both backends).
async fn drop_table(manager: &SchemaManager<'_>, table: impl IntoIden) -> Result<(), DbErr> {
    manager
        .drop_table(Table::drop().table(table).to_owned())
        .await
}

/// `ALTER TABLE table ADD COLUMN column`: one column per statement, as
/// SQLite takes them.
async fn add_column(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: impl IntoColumnDef,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).add_column(column).to_owned())
        .await
}

/// `ALTER TABLE table DROP COLUMN column` (SQLite 3.35 and later).
async fn drop_column(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: impl IntoIden,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection};

    const TABLES: [&str; 6] = [
        "users",
        "rooms",
        "room_members",
        "messages",
        "external_identities",
        "room_bans",
    ];

    async fn up_down_up(db: &DatabaseConnection) {
        Migrator::up(db, None).await.expect("first up");
        Migrator::up(db, None).await.expect("second up is a no-op");
        let manager = SchemaManager::new(db);
        for t in TABLES {
            assert!(manager.has_table(t).await.unwrap(), "{t} missing after up");
        }
        let row = db
            .query_one_raw(sea_orm_migration::sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT name FROM rooms WHERE id = 1",
            ))
            .await
            .unwrap()
            .expect("room 1");
        assert_eq!(row.try_get::<String>("", "name").unwrap(), "general");

        Migrator::down(db, None).await.expect("down");
        for t in TABLES {
            assert!(!manager.has_table(t).await.unwrap(), "{t} left after down");
        }
        Migrator::up(db, None).await.expect("up after down");
        assert_eq!(Migrator::get_pending_migrations(db).await.unwrap().len(), 0);
    }

    /// Usernames that differ only by case, from before `username_key`: the
    /// oldest keeps its name, the later one is renamed `{name}-{id}`.
    async fn duplicates_by_case_are_renamed(db: &DatabaseConnection) {
        use sea_orm_migration::sea_orm::Statement;
        Migrator::up(db, Some(5))
            .await
            .expect("up to users.deleted_at");
        for name in ["Alice_x", "alice_x", "bob"] {
            db.execute_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "INSERT INTO users (username, nickname, is_online, created_at) \
                     VALUES ('{name}', '{name}', false, CURRENT_TIMESTAMP)"
                ),
            ))
            .await
            .unwrap();
        }
        Migrator::up(db, None).await.expect("the rest");
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT id, username, username_key FROM users ORDER BY id",
            ))
            .await
            .unwrap();
        let got: Vec<(i64, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get("", "id").unwrap(),
                    r.try_get("", "username").unwrap(),
                    r.try_get("", "username_key").unwrap(),
                )
            })
            .collect();
        let second = got[1].0;
        assert_eq!(got[0].1, "Alice_x", "the oldest keeps its name");
        assert_eq!(got[1].1, format!("alice_x-{second}"));
        assert_eq!(got[1].2, format!("alice_x-{second}"));
        assert_eq!((got[2].1.as_str(), got[2].2.as_str()), ("bob", "bob"));
        let dup = db
            .execute_raw(Statement::from_string(
                db.get_database_backend(),
                "INSERT INTO users (username, username_key, nickname, is_online, created_at) \
                 VALUES ('ALICE_X', 'alice_x', 'x', false, CURRENT_TIMESTAMP)",
            ))
            .await;
        assert!(dup.is_err(), "the key is unique from now on");
    }

    #[tokio::test]
    async fn sqlite_duplicates_by_case_are_renamed() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        duplicates_by_case_are_renamed(&db).await;
    }

    /// Lookups of a sender's messages (an account's deletion) use the
    /// unique `(user_id, client_msg_id)` index, now the only one on
    /// `user_id`: no scan of the whole table.
    #[tokio::test]
    async fn messages_by_sender_use_an_index() {
        use sea_orm_migration::sea_orm::Statement;
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let plan = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "EXPLAIN QUERY PLAN DELETE FROM messages WHERE user_id = 7",
            ))
            .await
            .unwrap();
        let plan: Vec<String> = plan
            .iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("INDEX uq_messages_user_id_client_msg_id (user_id=?)")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn sqlite_up_down_up() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        up_down_up(&db).await;
    }

    /// Runs when `TEST_DATABASE_URL` points at a PostgreSQL database; works in
    /// a throwaway schema so it can share the database with other tests.
    #[tokio::test]
    async fn postgres_up_down_up() {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("TEST_DATABASE_URL not set: skipping");
            return;
        };
        let schema = format!("mig_test_{}", std::process::id());
        let admin = Database::connect(url.as_str()).await.unwrap();
        admin
            .execute_unprepared(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let db = Database::connect(format!("{url}{sep}options[search_path]={schema}"))
            .await
            .unwrap();
        up_down_up(&db).await;
        Migrator::down(&db, None).await.unwrap();
        duplicates_by_case_are_renamed(&db).await;
        db.close().await.unwrap();
        admin
            .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}
