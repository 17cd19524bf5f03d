//! The gateway's persistence layer: the ONLY module that talks SQL / sea-orm.
//!
//! [`Store`] wraps a pooled sea-orm connection to SQLite or PostgreSQL and
//! exposes one async method per query the gateway needs (the methods live in
//! `users.rs`, `external_users.rs`, `rooms.rs`, `members.rs` and
//! `messages.rs`, one impl block per aggregate; errors and their mapping in
//! `error.rs`).
//! Everything it returns is a plain record struct defined here, and every
//! failure is a [`StoreError`], so no sea-orm type leaks out of this module.
//!
//! Timestamps: callers pass `now` already truncated to milliseconds; it is
//! stored and returned unchanged (PostgreSQL keeps microseconds, SQLite
//! nanoseconds, so millisecond values round-trip exactly on both).

mod bans;
mod deleted_users;
mod direct_messages;
mod entities;
mod error;
mod external_users;
mod group_commit;
mod members;
mod message_edits;
mod messages;
mod read_markers;
mod room_entry;
mod rooms;
mod sqlite_messages;
mod statement_metrics;
#[cfg(test)]
mod test_support;
mod users;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use migrations::sea_orm_migration::MigratorTrait;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use shared::ids::{MessageId, RoomId, UserId};

pub use bans::BanRecord;
pub use error::StoreError;
use error::fk_violation_is_not_found;
pub use external_users::ExternalIdentity;
pub use group_commit::NewMessage;
pub use message_edits::{MessageChange, MessageKind};
pub use read_markers::{ReadMark, UNREAD_COUNT_MAX};
pub use room_entry::RoomEntry;

/// How long a caller waits for a pooled connection (or a new one) before the
/// store reports [`StoreError::Unavailable`]. Also bounds `connect` when the
/// server is down (sqlx retries until then).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Serialises concurrent `migrate` calls on PostgreSQL (the key is arbitrary
/// but fixed: ASCII "chatmig").
const PG_MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(27980790468798823)";
/// How long SQLite waits on a locked database before failing a statement.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Handle to the database. Cheap to clone (clones share one pool).
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads (and, on PostgreSQL, writes too).
    db: DatabaseConnection,
    /// Every write. On a SQLite file, a pool of its own with one connection:
    /// SQLite takes one writer at a time anyway, and writers that meet on
    /// its lock wait in its busy handler, which sleeps 1, 2, 5, 10, … ms
    /// and so turned a burst of first-seen users into ~300 upgrades/s on an
    /// idle CPU. Queued for this pool instead, they wait in order and wake
    /// at once. Elsewhere the same pool as `db`.
    writer: DatabaseConnection,
    /// Message inserts batched per transaction, once started
    /// ([`Store::with_group_commit`]); without it each is its own.
    group_commit: Option<std::sync::Arc<group_commit::GroupCommit>>,
}

/// A row of `users`.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    /// `None` for users created from an external JWT.
    pub password_hash: Option<String>,
    pub nickname: String,
    pub is_online: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The owner deleted the account: every token for it is refused.
    pub deleted: bool,
    /// Who may open a direct-message room with the user.
    pub dm_policy: crate::domain::DmPolicy,
}

/// A row of `rooms`.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomRecord {
    pub id: RoomId,
    pub name: String,
    pub description: String,
    pub is_private: bool,
    pub owner_id: Option<UserId>,
    /// Sequence number of the room's newest message (0: none yet).
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    /// A direct-message room (two users, no owner; see `Store::open_dm`).
    pub is_dm: bool,
}

/// A room as listed to a user, with its current number of members.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomListing {
    pub room: RoomRecord,
    pub member_count: u64,
    /// The viewer's role ('owner' | 'admin' | 'member'), read marker and
    /// unread messages; `None` when the viewer is not a member.
    pub role: Option<String>,
    pub last_read_seq: Option<i64>,
    pub unread_count: Option<u64>,
}

/// A row of `room_members` with the member's public profile (no password
/// hash, no presence).
#[derive(Clone, Debug, PartialEq)]
pub struct MemberRecord {
    pub user_id: UserId,
    pub username: String,
    pub nickname: String,
    /// 'owner' | 'admin' | 'member'
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// A row of `messages`.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRecord {
    pub id: MessageId,
    pub room_id: RoomId,
    pub user_id: UserId,
    /// Per-room sequence number: 1, 2, 3, … without gaps or duplicates.
    pub seq: i64,
    pub content: String,
    pub client_msg_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A message, or an edit or deletion of `target`.
    pub kind: MessageKind,
    pub target: Option<MessageId>,
    pub edited_at: Option<DateTime<Utc>>,
    /// Set on a deleted message (its content is then empty).
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Store {
    /// This store, with message inserts committed in groups by writer tasks
    /// started on the current runtime (see `store/group_commit.rs`): the node's
    /// store. One writer on SQLite (which takes one at a time anyway), four
    /// on PostgreSQL.
    pub fn with_group_commit(mut self) -> Store {
        let writers = if self.backend_name() == "sqlite" {
            1
        } else {
            4
        };
        let batcher = group_commit::GroupCommit::start(self.clone(), writers);
        self.group_commit = Some(std::sync::Arc::new(batcher));
        self
    }

    /// Opens a pool of at most `max_connections` connections.
    ///
    /// `url`: `"sqlite://path/file.db?mode=rwc"`, `"sqlite::memory:"` or
    /// `"postgres://..."`. For a SQLite file the parent directory is created
    /// if missing, and every pooled connection gets WAL with `synchronous=NORMAL`, `foreign_keys=ON`
    /// and a 5 s busy timeout. An in-memory SQLite database lives only as
    /// long as its connections, so it always gets exactly one connection
    /// that is never recycled (`max_connections` is ignored).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let mut opts = ConnectOptions::new(url);
        opts.max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .sqlx_logging(false);

        let mut own_writer = false;
        if DbBackend::Sqlite.is_prefix_of(url) {
            let parsed = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Other(format!("invalid sqlite url: {e}")))?;
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if in_memory {
                opts.max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else {
                own_writer = true;
                if let Some(parent) = parsed.get_filename().parent()
                    && !parent.as_os_str().is_empty()
                {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| {
                        StoreError::Other(format!(
                            "cannot create directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
            }
            opts.map_sqlx_sqlite_opts(sqlite_options);
        }

        let writer_opts = own_writer.then(|| {
            let mut o = opts.clone();
            // A small page cache: its writes touch few pages, and a
            // connection's cache is memory kept for the process's life.
            o.max_connections(1)
                .map_sqlx_sqlite_opts(|o| sqlite_options(o).pragma("cache_size", "-512"));
            o
        });
        let mut db = Database::connect(opts)
            .await
            .map_err(|e| StoreError::from(e).redacting(url))?;
        statement_metrics::install(&mut db);
        let writer = match writer_opts {
            Some(o) => {
                let mut writer = Database::connect(o)
                    .await
                    .map_err(|e| StoreError::from(e).redacting(url))?;
                statement_metrics::install(&mut writer);
                writer
            }
            None => db.clone(),
        };
        Ok(Store {
            db,
            writer,
            group_commit: None,
        })
    }

    /// A transaction that will write: on SQLite `BEGIN IMMEDIATE` takes the
    /// write lock up front, so two read-then-write transactions cannot
    /// deadlock on upgrading their locks.
    async fn begin_write(&self) -> Result<sea_orm::DatabaseTransaction, StoreError> {
        Ok(self
            .writer
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?)
    }

    /// Applies all pending migrations (a no-op when the schema is current).
    ///
    /// The whole run is one transaction holding the database's write lock
    /// (SQLite `BEGIN IMMEDIATE`; PostgreSQL an advisory transaction lock),
    /// so nodes starting together migrate one after the other and a failed
    /// run leaves nothing behind. Each migration nests as a savepoint.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_unprepared(PG_MIGRATION_LOCK).await?;
        }
        migrations::Migrator::up(&txn, None).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Round-trips to the database (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        Ok(())
    }

    /// The read pool's connections: (in use, idle, the limit).
    pub fn pool_usage(&self) -> (u32, u32, u32) {
        let (size, idle, max) = match self.db.get_database_backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            _ => {
                let pool = self.db.get_sqlite_connection_pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
        };
        let idle = idle as u32;
        (size.saturating_sub(idle), idle, max)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            DbBackend::MySql => "mysql",
            _ => "unknown",
        }
    }
}

/// Every pooled SQLite connection's settings. WAL with synchronous=NORMAL:
/// a commit is in the WAL file (the OS's page cache) before it returns, so
/// it survives the process being killed, which is what an acknowledgement
/// promises (see `node::messages`); only a power cut or an OS crash can
/// lose the last commits. FULL would add an fsync to every message.
/// Commits `txn` when `result` is `Ok`, else rolls it back and returns the
/// error: the end of every transaction whose work can fail half way. The
/// rollback is best effort (dropping the transaction rolls back too).
async fn commit_if_ok<T>(
    txn: sea_orm::DatabaseTransaction,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

fn sqlite_options(o: SqliteConnectOptions) -> SqliteConnectOptions {
    o.journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        // Checkpoints are run off the message writer's path
        // (`group_commit`); this is only the backstop (40 MB).
        .pragma("wal_autocheckpoint", "10000")
}

#[cfg(test)]
mod tests {
    use super::test_support::{backends, empty_backends, now_ms, user};
    use super::*;
    use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, EntityTrait, PaginatorTrait};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_migrations_from_several_nodes() {
        for t in empty_backends(2).await {
            let mut nodes = vec![t.store.clone()];
            for _ in 0..3 {
                nodes.push(Store::connect(&t.url, 2).await.unwrap());
            }
            let runs = nodes
                .into_iter()
                .map(|s| tokio::spawn(async move { s.migrate().await }));
            for r in futures_util::future::join_all(runs).await {
                r.unwrap().unwrap_or_else(|e| panic!("{}: {e}", t.label));
            }
            assert_eq!(
                migrations::Migrator::get_pending_migrations(&t.store.db)
                    .await
                    .unwrap()
                    .len(),
                0
            );
            assert_eq!(
                t.store.find_room(RoomId(1)).await.unwrap().unwrap().name,
                "general"
            );
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn migrate_twice_is_a_noop_and_general_room_exists() {
        for t in backends(2).await {
            t.store.migrate().await.unwrap();
            t.store.ping().await.unwrap();
            let applied = migrations::Migrator::get_applied_migrations(&t.store.db)
                .await
                .unwrap();
            assert_eq!(
                applied.len(),
                migrations::Migrator::migrations().len(),
                "{}",
                t.label
            );
            assert_eq!(
                entities::room::Entity::find()
                    .count(&t.store.db)
                    .await
                    .unwrap(),
                1
            );

            let general = t.store.find_room(RoomId(1)).await.unwrap().expect("room 1");
            assert_eq!(general.name, "general");
            assert_eq!(general.description, "The default room");
            assert!(!general.is_private);
            assert_eq!((general.owner_id, general.last_seq), (None, 0));

            let created = entities::room::Entity::insert(entities::room::ActiveModel {
                id: NotSet,
                name: Set("second".into()),
                description: Set(String::new()),
                is_private: Set(true),
                owner_id: Set(None),
                last_seq: Set(0),
                created_at: Set(now_ms()),
                ..Default::default()
            })
            .exec_with_returning(&t.store.db)
            .await
            .unwrap();
            assert_eq!(created.id, 2, "{}: next room id", t.label);
            assert_eq!(t.store.find_room(RoomId(3)).await.unwrap(), None);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn sqlite_connections_get_pragmas() {
        for t in backends(3).await {
            if t.store.backend_name() != "sqlite" {
                t.cleanup().await;
                continue;
            }
            // Check several distinct pooled connections at once, and the
            // writer's (a pool of its own).
            let pools = (0..3).map(|_| t.store.db.clone());
            let checks = pools.chain([t.store.writer.clone()]).map(|db| async move {
                let txn = sea_orm::TransactionTrait::begin(&db).await.unwrap();
                let mut out = Vec::new();
                for p in [
                    "journal_mode",
                    "foreign_keys",
                    "busy_timeout",
                    "synchronous",
                ] {
                    let row = txn
                        .query_one_raw(sea_orm::Statement::from_string(
                            DbBackend::Sqlite,
                            format!("PRAGMA {p}"),
                        ))
                        .await
                        .unwrap()
                        .unwrap();
                    out.push(
                        row.try_get_by_index::<String>(0)
                            .or_else(|_| row.try_get_by_index::<i64>(0).map(|v| v.to_string()))
                            .unwrap(),
                    );
                }
                txn.commit().await.unwrap();
                out
            });
            for got in futures_util::future::join_all(checks).await {
                // synchronous 1 = NORMAL.
                assert_eq!(got, ["wal", "1", "5000", "1"]);
            }
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn memory_sqlite_works() {
        let store = Store::connect("sqlite::memory:", 8).await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.backend_name(), "sqlite");
        let u = user(&store, "mem").await;
        assert_eq!(store.find_user(u.id).await.unwrap(), Some(u));
    }
}
