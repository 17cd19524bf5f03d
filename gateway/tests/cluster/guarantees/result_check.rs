//! The result checker of the delivery-guarantee scenarios: the truth is
//! the test's PostgreSQL database, and every check compares what clients
//! received (and what senders had acknowledged) with its rows; node
//! metrics say how often the delivery machinery had to step in.

use super::*;

// ---------------------------------------------------------------------------
// SQL: the truth
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) seq: i64,
    pub(super) user_id: i64,
    pub(super) content: String,
    pub(super) client_msg_id: Option<String>,
    /// `created_at` as Unix seconds.
    pub(super) created: f64,
}

/// Every stored message of `room`, by seq.
pub(super) async fn stored_messages(cluster: &Cluster, room: i64) -> Vec<Row> {
    let db = Database::connect(&cluster.db.url)
        .await
        .unwrap_or_else(|e| panic!("connect to the test database: {e}"));
    let sql = format!(
        "SELECT id, seq, user_id, content, client_msg_id, \
         EXTRACT(EPOCH FROM created_at)::float8 AS created \
         FROM messages WHERE room_id = {room} ORDER BY seq"
    );
    let rows = db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql.clone()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = db.close().await;
    rows.iter()
        .map(|r| Row {
            id: r.try_get("", "id").unwrap(),
            seq: r.try_get("", "seq").unwrap(),
            user_id: r.try_get("", "user_id").unwrap(),
            content: r.try_get("", "content").unwrap(),
            client_msg_id: r.try_get("", "client_msg_id").unwrap(),
            created: r.try_get("", "created").unwrap(),
        })
        .collect()
}

pub(super) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------

/// `[1, 2, 3, 5, 4, 6]` → `"1..=3, 5, 4, 6"`.
pub(super) fn ranges(seqs: &[i64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < seqs.len() {
        let mut j = i;
        while j + 1 < seqs.len() && seqs[j + 1] == seqs[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        if j > i {
            let _ = write!(out, "{}..={}", seqs[i], seqs[j]);
        } else {
            let _ = write!(out, "{}", seqs[i]);
        }
        i = j + 1;
    }
    if out.is_empty() { "(none)".into() } else { out }
}

/// How `got` differs from `1..=n`.
pub(super) fn describe_seq_diff(got: &[i64], n: i64) -> String {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for s in got {
        *counts.entry(*s).or_default() += 1;
    }
    let missing: Vec<i64> = (1..=n).filter(|s| !counts.contains_key(s)).collect();
    let dups: Vec<String> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(s, c)| format!("{s}×{c}"))
        .collect();
    let unknown: Vec<i64> = counts
        .keys()
        .copied()
        .filter(|s| *s < 1 || *s > n)
        .collect();
    let first_break = got
        .iter()
        .enumerate()
        .find(|(i, s)| **s != *i as i64 + 1)
        .map(|(i, _)| {
            let from = i.saturating_sub(3);
            let to = (i + 4).min(got.len());
            format!(
                "position {i} (expected seq {}): ...{:?}...",
                i + 1,
                &got[from..to]
            )
        });
    format!(
        "got {} frames; missing seqs: {}; duplicated: {}; not in SQL: {:?}; first divergence: {}; \
         received order: {}",
        got.len(),
        ranges(&missing),
        if dups.is_empty() {
            "(none)".into()
        } else {
            dups.join(", ")
        },
        unknown,
        first_break.unwrap_or_else(|| "(none)".into()),
        ranges(got)
    )
}

/// When every missing seq lies below the first one received: the pattern of
/// a fresh cursor (a join without `since_seq` starts at the first live
/// message) overtaken on the bus by a later message, after which the earlier
/// one is dropped as a "duplicate" (see `conn::delivery`).
pub(super) fn below_first_hint(seqs: &[i64]) -> String {
    let Some(first) = seqs.first().copied() else {
        return String::new();
    };
    let have: HashSet<i64> = seqs.iter().copied().collect();
    let missing_below: Vec<i64> = (1..first).filter(|s| !have.contains(s)).collect();
    if missing_below.is_empty() {
        return String::new();
    }
    format!(
        "; NOTE: seqs {} are below the first seq this connection received ({first}): a joined-\
         without-since_seq cursor starts at the first live message, so a lower seq published \
         after it is dropped as a duplicate",
        ranges(&missing_below)
    )
}

/// A frame's data must be the stored row with its seq.
pub(super) fn matches_row(d: &Value, rows: &[Row]) -> Result<(), String> {
    let seq = d["seq"].as_i64().ok_or_else(|| format!("no seq in {d}"))?;
    let Some(r) = usize::try_from(seq - 1).ok().and_then(|i| rows.get(i)) else {
        return Err(format!("seq {seq} is not in SQL: {d}"));
    };
    let got = (
        d["id"].as_i64(),
        d["user_id"].as_i64(),
        d["content"].as_str(),
        d["client_msg_id"].as_str(),
        d["room_id"].as_i64(),
    );
    let want = (
        Some(r.id),
        Some(r.user_id),
        Some(r.content.as_str()),
        r.client_msg_id.as_deref(),
        Some(ROOM),
    );
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "seq {seq}: frame (id, user_id, content, client_msg_id, room_id) = {got:?}, SQL row = {want:?}"
        ))
    }
}

/// A plain listener must have received exactly the rows, in seq order.
pub(super) fn check_exact_stream(label: &str, got: &[Value], rows: &[Row]) -> Vec<String> {
    let mut problems = Vec::new();
    let seqs: Vec<i64> = got
        .iter()
        .map(|d| d["seq"].as_i64().unwrap_or(-1))
        .collect();
    let expected: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    if seqs != expected {
        problems.push(format!(
            "{label}: seq list is not exactly 1..={} in order: {}{}",
            rows.len(),
            describe_seq_diff(&seqs, rows.len() as i64),
            below_first_hint(&seqs)
        ));
    }
    problems.extend(
        got.iter()
            .filter_map(|d| matches_row(d, rows).err())
            .take(5)
            .map(|e| format!("{label}: {e}")),
    );
    problems
}

/// A sender's own stream: everything through the per-connection cursor is
/// exactly 1..=N in order, but the direct answer to a retry of an already
/// stored message (a duplicate answer) bypasses the cursor, so up to
/// `attempts - 1` extra copies of a retried own message may appear anywhere.
pub(super) fn check_sender_stream(log: &SenderLog, got: &[Value], rows: &[Row]) -> Vec<String> {
    let mut problems = Vec::new();
    let n = rows.len() as i64;
    let allowed_extra: HashMap<&str, u32> = log
        .acks
        .iter()
        .filter(|a| a.attempts > 1)
        .map(|a| (a.cmid.as_str(), a.attempts - 1))
        .collect();
    let mut extras_used: HashMap<String, u32> = HashMap::new();
    let mut next = 1;
    let mut seen: HashSet<i64> = HashSet::new();
    for d in got {
        let seq = d["seq"].as_i64().unwrap_or(-1);
        let own_retried = d["user_id"].as_i64() == Some(log.user_id)
            && d["client_msg_id"]
                .as_str()
                .is_some_and(|c| allowed_extra.contains_key(c));
        if seq == next && !seen.contains(&seq) {
            next += 1;
            seen.insert(seq);
            continue;
        }
        if own_retried {
            let cmid = d["client_msg_id"].as_str().unwrap().to_owned();
            let used = extras_used.entry(cmid.clone()).or_default();
            *used += 1;
            if *used <= allowed_extra[cmid.as_str()] {
                continue;
            }
        }
        let seqs: Vec<i64> = got
            .iter()
            .map(|d| d["seq"].as_i64().unwrap_or(-1))
            .collect();
        problems.push(format!(
            "{}: frame seq {seq} out of place (expected seq {next} next; duplicate answers \
             allowed for retried own ids {:?}): {}{}",
            log.label,
            allowed_extra,
            describe_seq_diff(&seqs, n),
            below_first_hint(&seqs)
        ));
        break;
    }
    if problems.is_empty() && next != n + 1 {
        let seqs: Vec<i64> = got
            .iter()
            .map(|d| d["seq"].as_i64().unwrap_or(-1))
            .collect();
        problems.push(format!(
            "{}: stream ends at seq {} of {n}: {}",
            log.label,
            next - 1,
            describe_seq_diff(&seqs, n)
        ));
    }
    problems.extend(
        got.iter()
            .filter_map(|d| matches_row(d, rows).err())
            .take(5)
            .map(|e| format!("{}: {e}", log.label)),
    );
    problems
}

/// SQL holds seq 1..=N without holes, and exactly the acknowledged messages:
/// each acknowledged (sender, client_msg_id) once, with the acknowledged id
/// and seq, and nothing that was never acknowledged.
pub(super) fn check_sql_against_acks(
    rows: &[Row],
    senders: &[&SenderLog],
    expected_total: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    if seqs != (1..=rows.len() as i64).collect::<Vec<_>>() {
        problems.push(format!(
            "SQL seqs of room {ROOM} are not 1..=N: {}",
            ranges(&seqs)
        ));
    }
    let mut per_key: HashMap<(i64, String), Vec<&Row>> = HashMap::new();
    for r in rows {
        match &r.client_msg_id {
            Some(c) => per_key.entry((r.user_id, c.clone())).or_default().push(r),
            None => problems.push(format!("SQL row without client_msg_id: {r:?}")),
        }
    }
    let mut acked: HashSet<(i64, String)> = HashSet::new();
    for s in senders {
        for a in &s.acks {
            acked.insert((s.user_id, a.cmid.clone()));
            match per_key.get(&(s.user_id, a.cmid.clone())).map(Vec::as_slice) {
                Some([r]) if r.id == a.id && r.seq == a.seq => {}
                Some([r]) => problems.push(format!(
                    "{}: {} acknowledged as id {} seq {}, stored as id {} seq {}",
                    s.label, a.cmid, a.id, a.seq, r.id, r.seq
                )),
                Some(many) => problems.push(format!(
                    "{}: {} acknowledged once, stored {} times: {many:?}",
                    s.label,
                    a.cmid,
                    many.len()
                )),
                None => problems.push(format!(
                    "{}: {} acknowledged (id {} seq {}) but not in SQL",
                    s.label, a.cmid, a.id, a.seq
                )),
            }
        }
    }
    for ((user, cmid), rs) in &per_key {
        if !acked.contains(&(*user, cmid.clone())) {
            problems.push(format!(
                "stored but never acknowledged: user {user} {cmid}: {rs:?}"
            ));
        }
    }
    let acked_total: usize = senders.iter().map(|s| s.acks.len()).sum();
    if acked_total != expected_total || rows.len() != expected_total {
        problems.push(format!(
            "expected {expected_total} acknowledged and stored messages; acknowledged {acked_total}, \
             SQL rows {}",
            rows.len()
        ));
    }
    problems
}

/// A counter from the node's `/metrics` (name without the `chat_gateway_` prefix).
pub(super) async fn metric(node: &GatewayNode, name: &str) -> Option<f64> {
    let body = reqwest::Client::new()
        .get(node.url("/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == format!("chat_gateway_{name}") || k.ends_with(&format!("_{name}")))
            .then(|| v.trim().parse().ok())?
    })
}

pub(super) fn show(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v}"))
}

/// Per node: how often the delivery machinery had to step in. `missed live`
/// counts (message, connection) pairs that did not come through the bus and
/// were filled from SQL instead: every connection of the node is in the room
/// from the start, so it should have got all `rows` messages live.
pub(super) async fn node_stats(
    cluster: &Cluster,
    rows: usize,
    conns_per_node: usize,
) -> (String, f64) {
    let mut out = String::new();
    let mut missed_total = 0.0;
    for n in &cluster.nodes {
        let delivered = metric(n, "messages_delivered_total").await;
        let missed = delivered.map(|d| (rows * conns_per_node) as f64 - d);
        missed_total += missed.unwrap_or(0.0);
        let _ = write!(
            out,
            "node {}: missed live {} (of {}), gaps filled {}, bus reconnects {}, published {}; ",
            n.name,
            show(missed),
            rows * conns_per_node,
            show(metric(n, "bus_gaps_filled_total").await),
            show(metric(n, "bus_reconnects_total").await),
            show(metric(n, "messages_published_total").await),
        );
    }
    (out, missed_total)
}
