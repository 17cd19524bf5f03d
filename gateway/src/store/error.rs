//! [`StoreError`] and the mapping from sea-orm / driver errors to it:
//! unique violations -> `Conflict`, unreachable / overloaded / timed-out
//! database -> `Unavailable`, the rest -> `Other`. Error texts come from the
//! driver and never contain bound parameters; URLs are shown without their
//! password.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key (username, membership, …) is already taken.
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    /// The database could not be reached or timed out: callers map this to `unavailable` / 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<DbErr> for StoreError {
    /// Unique violations become `Conflict`; connection, pool, I/O, lock and
    /// timeout failures become `Unavailable`; the rest `Other`. The message
    /// is the driver's error text, which never contains bound parameters.
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
            return StoreError::Conflict;
        }
        match &err {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => {
                StoreError::Unavailable(err.to_string())
            }
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
                if sqlx_error_is_unavailable(e) =>
            {
                StoreError::Unavailable(err.to_string())
            }
            DbErr::RecordNotFound(_) => StoreError::NotFound,
            _ => StoreError::Other(err.to_string()),
        }
    }
}

/// Whether a driver error means "the database is unreachable / overloaded /
/// timed out" rather than "this statement is wrong".
fn sqlx_error_is_unavailable(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    match err {
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed => true,
        E::Database(db) => {
            let Some(code) = db.code() else { return false };
            if db
                .try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                // 08xxx connection exception, 53300 too many connections,
                // 57014 statement timeout, 57P01..03 server shutting down / starting.
                code.starts_with("08")
                    || matches!(&*code, "53300" | "57014" | "57P01" | "57P02" | "57P03")
            } else {
                code.parse::<i32>().is_ok_and(sqlite_code_is_unavailable)
            }
        }
        _ => false,
    }
}

/// Whether a SQLite (extended) result code means the file cannot be used
/// right now rather than that the statement is wrong: its primary code is
/// BUSY, LOCKED, IOERR or CANTOPEN. Shared by the sqlx and the C API paths.
pub(super) fn sqlite_code_is_unavailable(extended_code: i32) -> bool {
    use rusqlite::ffi;
    matches!(
        extended_code & 0xff,
        ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED | ffi::SQLITE_IOERR | ffi::SQLITE_CANTOPEN
    )
}

/// Like `StoreError::from`, but a foreign-key violation (the referenced
/// room or user does not exist) becomes `NotFound`.
pub(super) fn fk_violation_is_not_found(err: DbErr) -> StoreError {
    match err.sql_err() {
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => StoreError::NotFound,
        _ => err.into(),
    }
}

/// `url` with the password (if any) replaced by `***`, for error messages.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = rest[..at].find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end + 3],
        &rest[..colon],
        &rest[at..]
    )
}

impl StoreError {
    pub(super) fn redacting(self, url: &str) -> Self {
        let redacted = redact_url(url);
        if redacted == url {
            return self;
        }
        match self {
            StoreError::Unavailable(m) => StoreError::Unavailable(m.replace(url, &redacted)),
            StoreError::Other(m) => StoreError::Other(m.replace(url, &redacted)),
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    #[tokio::test]
    async fn unreachable_database_is_unavailable_and_redacted() {
        let err = Store::connect("postgres://bob:s3cret@127.0.0.1:1/chat", 1)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/chat?x=1"),
            "postgres://bob:***@db:5432/chat?x=1"
        );
        assert_eq!(
            redact_url("sqlite://data/chat.db?mode=rwc"),
            "sqlite://data/chat.db?mode=rwc"
        );
    }
}
