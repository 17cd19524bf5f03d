//! Every SQL statement the store runs, timed: `chat_gateway_db_statement_seconds`
//! by the statement's kind (`select`, `insert`, `update`, `delete`, ...) and
//! the table it names first. Installed on each pool as sea-orm's metric
//! callback, so no query path can forget it; labels come from a closed set
//! (the tables of the schema), never from the SQL text itself.

use sea_orm::DatabaseConnection;

const TABLES: [&str; 7] = [
    "messages",
    "external_identities",
    "room_bans",
    "room_members",
    "users",
    "rooms",
    "seaql_migrations",
];

/// Time every statement run through `conn` (and its transactions).
pub fn install(conn: &mut DatabaseConnection) {
    conn.set_metric_callback(|info| {
        let (kind, table) = label(&info.statement.sql);
        crate::metrics::metrics()
            .db_statement_seconds
            .with_label_values(&[kind, table])
            .observe(info.elapsed.as_secs_f64());
    });
}

/// The statement's kind and first table, from its first words: `SELECT ...
/// FROM "rooms"`, `INSERT INTO "messages"`, `UPDATE "users"`, `DELETE FROM
/// ...`; `other` for what is none of these (pragmas, `BEGIN`, a `WITH`).
fn label(sql: &str) -> (&'static str, &'static str) {
    let head = sql.trim_start();
    let word = |w: &str| {
        head.get(..w.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(w))
    };
    let (kind, after) = if word("SELECT") {
        ("select", " FROM ")
    } else if word("INSERT") {
        ("insert", " INTO ")
    } else if word("UPDATE") {
        ("update", "UPDATE ")
    } else if word("DELETE") {
        ("delete", " FROM ")
    } else {
        return ("other", "other");
    };
    // Far enough for the first table, bounded for long statements.
    let upper: String = head
        .chars()
        .take(400)
        .collect::<String>()
        .to_ascii_uppercase();
    let table = upper
        .find(after)
        .map(|at| &head[at + after.len()..])
        .and_then(|rest| {
            let name: String = rest
                .trim_start_matches([' ', '"', '`', '('])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            TABLES
                .iter()
                .copied()
                .find(|t| t.eq_ignore_ascii_case(&name))
        })
        .unwrap_or("other");
    (kind, table)
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn statements_are_labelled_by_kind_and_first_table() {
        for (sql, expected) in [
            (
                r#"SELECT "rooms"."last_seq" FROM "rooms" WHERE "id" = $1"#,
                ("select", "rooms"),
            ),
            (
                r#"INSERT INTO "messages" ("room_id") VALUES (?), (?) RETURNING "id""#,
                ("insert", "messages"),
            ),
            (
                r#"UPDATE "users" SET "is_online" = CASE "id" WHEN 1 THEN 1 END"#,
                ("update", "users"),
            ),
            (
                r#"DELETE FROM "room_members" WHERE "room_id" = ?"#,
                ("delete", "room_members"),
            ),
            ("  select 1", ("select", "other")),
            ("PRAGMA wal_checkpoint(PASSIVE)", ("other", "other")),
            (
                r#"SELECT * FROM "secret_table_of_someone""#,
                ("select", "other"),
            ),
        ] {
            assert_eq!(label(sql), expected, "{sql}");
        }
    }
}
