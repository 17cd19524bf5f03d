//! Timestamps as the gateway stores and sends them: UTC, millisecond precision.
//! PostgreSQL keeps microseconds and SQLite nanoseconds; truncating first makes
//! a message read back from either identical to the one that was broadcast.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// RFC 3339 with milliseconds and `Z`, e.g. `2026-11-26T18:00:00.123Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
