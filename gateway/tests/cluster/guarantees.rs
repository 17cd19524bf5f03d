//! Delivery guarantees under failure, end to end over separate processes:
//! per-room `seq`, exactly-once in-order delivery per connection, gaps filled
//! from SQL, resume with `since_seq`, idempotent `client_msg_id` (see
//! `gateway/src/node/messages.rs` and `gateway/src/conn/delivery.rs`).
//!
//! The client model the gateway documents is used throughout: a sender sends
//! one message at a time with a `client_msg_id` and waits for its
//! acknowledgement (the `message` frame carrying that id: the room broadcast
//! of a new message, or the direct answer to a retry of a stored one); an
//! `error` `unavailable` whose `ref` is that id means "not sent", and the SAME
//! id is sent again until acknowledged. The truth is the test's PostgreSQL
//! database: every check compares what clients received with its rows.
//!
//! The senders never wait for a disruption to be over: a stream may end
//! right as one ends, with nothing after its last message to reveal a gap.
//! Every message must still reach every connection (through the refill that
//! follows a confirmed re-subscription, and the republishing of stored
//! messages whose publish failed).

use crate::helpers::{Cluster, GatewayNode, Opts, User, WsClient};
use futures_util::SinkExt;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const ROOM: i64 = 1;
/// Pause between a sender's acknowledgement and its next message.
const PACE: Duration = Duration::from_millis(20);
/// Pause before resending after `unavailable`.
const RETRY_AFTER: Duration = Duration::from_millis(150);
/// Pause before resending after `rate_limited` (not expected at these rates).
const RATE_LIMITED_PAUSE: Duration = Duration::from_millis(500);
/// How long one attempt waits for its answer before the same id is sent
/// again (above the gateway's 2 s Redis command timeout, so an attempt whose
/// publish is still timing out is normally answered first).
const RESEND_AFTER: Duration = Duration::from_secs(3);
/// How long test 3 waits for an answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// After every reader has everything: how long to keep reading for late duplicates.
const LATE_WINDOW: Duration = Duration::from_millis(700);

// ---------------------------------------------------------------------------
// SQL: the truth
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Row {
    id: i64,
    seq: i64,
    user_id: i64,
    content: String,
    client_msg_id: Option<String>,
    /// `created_at` as Unix seconds.
    created: f64,
}

/// Every stored message of `room`, by seq.
async fn stored_messages(cluster: &Cluster, room: i64) -> Vec<Row> {
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

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------

/// `[1, 2, 3, 5, 4, 6]` → `"1..=3, 5, 4, 6"`.
fn ranges(seqs: &[i64]) -> String {
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
fn describe_seq_diff(got: &[i64], n: i64) -> String {
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
fn below_first_hint(seqs: &[i64]) -> String {
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
fn matches_row(d: &Value, rows: &[Row]) -> Result<(), String> {
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
fn check_exact_stream(label: &str, got: &[Value], rows: &[Row]) -> Vec<String> {
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
fn check_sender_stream(log: &SenderLog, got: &[Value], rows: &[Row]) -> Vec<String> {
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
fn check_sql_against_acks(
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
async fn metric(node: &GatewayNode, name: &str) -> Option<f64> {
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

fn show(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v}"))
}

/// Per node: how often the delivery machinery had to step in. `missed live`
/// counts (message, connection) pairs that did not come through the bus and
/// were filled from SQL instead: every connection of the node is in the room
/// from the start, so it should have got all `rows` messages live.
async fn node_stats(cluster: &Cluster, rows: usize, conns_per_node: usize) -> (String, f64) {
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

// ---------------------------------------------------------------------------
// Readers: collect every `message` frame of a connection
// ---------------------------------------------------------------------------

struct Reader {
    label: String,
    got: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<(WsClient, Vec<String>)>,
}

/// Read `c` in the background: every `message` frame's data goes to `got`
/// (after `initial`); an `error` frame other than a stale `unavailable`, or
/// the connection ending, is a problem.
fn spawn_reader(mut c: WsClient, initial: Vec<Value>) -> Reader {
    let got = Arc::new(Mutex::new(initial));
    let stop = Arc::new(AtomicBool::new(false));
    let label = c.label.clone();
    let task = {
        let (got, stop) = (Arc::clone(&got), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut problems = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.rx.next_within(Duration::from_millis(200)).await {
                    Ok(f) if f["type"] == "message" => got.lock().unwrap().push(f["data"].clone()),
                    // A sender's late `unavailable` for an id acknowledged
                    // meanwhile (see `run_sender`).
                    Ok(f) if f["type"] == "error" && f["data"]["code"] == "unavailable" => {}
                    Ok(f) if f["type"] == "error" => {
                        problems.push(format!("{}: unexpected error frame {f}", c.label))
                    }
                    Ok(_) => {}
                    Err(e) if e.starts_with("no frame") => {}
                    Err(e) => {
                        problems.push(format!("{}: connection lost while reading: {e}", c.label));
                        break;
                    }
                }
            }
            (c, problems)
        })
    };
    Reader {
        label,
        got,
        stop,
        task,
    }
}

/// Wait until every reader holds every seq 1..=n (or `within` passes), then
/// `LATE_WINDOW` more for late duplicates; stop them all. Their frames and
/// problems; the checks that follow say what is missing.
async fn finish_readers(
    readers: Vec<Reader>,
    n: i64,
    within: Duration,
) -> Vec<(String, Vec<Value>, Vec<String>)> {
    let deadline = Instant::now() + within;
    loop {
        let complete = readers.iter().all(|r| {
            let got = r.got.lock().unwrap();
            let seqs: HashSet<i64> = got.iter().filter_map(|d| d["seq"].as_i64()).collect();
            (1..=n).all(|s| seqs.contains(&s))
        });
        let dead = readers.iter().any(|r| r.task.is_finished());
        if complete || dead || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(LATE_WINDOW).await;
    let mut out = Vec::new();
    for r in readers {
        r.stop.store(true, Ordering::Relaxed);
        let (_client, problems) = r.task.await.expect("reader task");
        let got = std::mem::take(&mut *r.got.lock().unwrap());
        out.push((r.label, got, problems));
    }
    out
}

// ---------------------------------------------------------------------------
// Senders: one message at a time, retried with the same id until acknowledged
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Ack {
    cmid: String,
    id: i64,
    seq: i64,
    /// 1 when the first attempt was acknowledged.
    attempts: u32,
}

#[derive(Debug, Default)]
struct SenderLog {
    label: String,
    user_id: i64,
    acks: Vec<Ack>,
    unavailable: u32,
    rate_limited: u32,
    /// Attempts that got no answer within `RESEND_AFTER`.
    unanswered: u32,
    /// `unavailable` answers that arrived after their id was acknowledged.
    stale: u32,
    /// Timeline of notable events (ms since the stream started).
    events: Vec<String>,
}

struct SenderPlan {
    tag: String,
    count: usize,
}

/// What a sender task hands back: its client (to keep reading), the
/// `message` frames it received, its log and, on failure, why.
type SenderOutcome = (WsClient, Vec<Value>, SenderLog, Result<(), String>);

enum Answer {
    Ack(Value),
    Unavailable,
    RateLimited,
    Nothing,
}

/// Send `plan.count` messages; every `message` frame received meanwhile goes
/// to `traffic`. Returns the client (to keep reading), the log and, on
/// failure, why.
async fn run_sender(
    mut c: WsClient,
    user_id: i64,
    plan: SenderPlan,
    acked: Arc<AtomicUsize>,
    t0: Instant,
    deadline: Instant,
) -> SenderOutcome {
    let mut log = SenderLog {
        label: c.label.clone(),
        user_id,
        ..Default::default()
    };
    let mut traffic = Vec::new();
    let ms = |t0: Instant| t0.elapsed().as_millis();
    let result = async {
        let mut acked_ids: HashSet<String> = HashSet::new();
        for i in 0..plan.count {
            let cmid = format!("{}-{i}", plan.tag);
            let content = format!("{} message {i}", plan.tag);
            let frame = json!({"type": "message", "room_id": ROOM, "content": content, "client_msg_id": cmid});
            let mut attempts = 0u32;
            let data = loop {
                attempts += 1;
                if Instant::now() >= deadline {
                    return Err(format!("{cmid} still not acknowledged after {attempts} attempts"));
                }
                c.tx
                    .send(Message::text(frame.to_string()))
                    .await
                    .map_err(|e| format!("sending {cmid}: {e}"))?;
                let answer_by = (Instant::now() + RESEND_AFTER).min(deadline);
                let answer = loop {
                    let left = answer_by.saturating_duration_since(Instant::now());
                    let f = match c.rx.next_within(left).await {
                        Ok(f) => f,
                        Err(e) if e.starts_with("no frame") => break Answer::Nothing,
                        Err(e) => {
                            return Err(format!("waiting for an answer to {cmid} (attempt {attempts}): {e}"));
                        }
                    };
                    match f["type"].as_str() {
                        Some("message") => {
                            let d = f["data"].clone();
                            traffic.push(d.clone());
                            if d["user_id"].as_i64() == Some(user_id)
                                && d["client_msg_id"].as_str() == Some(cmid.as_str())
                            {
                                break Answer::Ack(d);
                            }
                        }
                        Some("error") => {
                            let (code, r) = (f["data"]["code"].as_str(), f["data"]["ref"].as_str());
                            match (code, r) {
                                // (Possibly the late answer to an earlier
                                // attempt of this id: one more attempt, harmless.)
                                (Some("unavailable"), Some(r)) if r == cmid => break Answer::Unavailable,
                                // The publish of an earlier attempt timed out
                                // after all went through: its echo came first.
                                (Some("unavailable"), Some(r)) if acked_ids.contains(r) => {
                                    log.stale += 1;
                                    log.events.push(format!("{}ms stale unavailable for {r}", ms(t0)));
                                }
                                (Some("rate_limited"), _) => break Answer::RateLimited,
                                _ => return Err(format!("unexpected error frame while waiting for {cmid}: {f}")),
                            }
                        }
                        _ => {} // presence frames
                    }
                };
                match answer {
                    Answer::Ack(d) => break d,
                    Answer::Unavailable => {
                        log.unavailable += 1;
                        if attempts == 1 {
                            log.events.push(format!("{}ms {cmid}: unavailable, retrying", ms(t0)));
                        }
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                    Answer::RateLimited => {
                        log.rate_limited += 1;
                        log.events.push(format!("{}ms {cmid}: rate_limited", ms(t0)));
                        tokio::time::sleep(RATE_LIMITED_PAUSE).await;
                    }
                    // No acknowledgement: the documented client move is to
                    // send the same id again (a stored original comes back).
                    Answer::Nothing => {
                        log.unanswered += 1;
                        log.events.push(format!(
                            "{}ms {cmid}: no answer within {RESEND_AFTER:?} (attempt {attempts}), resending",
                            ms(t0)
                        ));
                    }
                }
            };
            let ack = Ack {
                cmid: cmid.clone(),
                id: data["id"].as_i64().unwrap_or(-1),
                seq: data["seq"].as_i64().unwrap_or(-1),
                attempts,
            };
            if attempts > 1 {
                log.events.push(format!(
                    "{}ms {cmid}: acknowledged after {attempts} attempts (seq {})",
                    ms(t0),
                    ack.seq
                ));
            }
            log.acks.push(ack);
            acked_ids.insert(cmid);
            acked.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(PACE).await;
        }
        Ok(())
    }
    .await;
    (c, traffic, log, result)
}

fn sender_summary(log: &SenderLog) -> String {
    let retried: Vec<String> = log
        .acks
        .iter()
        .filter(|a| a.attempts > 1)
        .map(|a| format!("{}(seq {}, {} attempts)", a.cmid, a.seq, a.attempts))
        .collect();
    format!(
        "{}: {} acknowledged, {} unavailable answers, {} rate_limited, {} unanswered, {} stale; \
         retried: [{}]\n    events: {}",
        log.label,
        log.acks.len(),
        log.unavailable,
        log.rate_limited,
        log.unanswered,
        log.stale,
        retried.join(", "),
        log.events.join(" | ")
    )
}

// ---------------------------------------------------------------------------
// One streaming scenario, parameterised by its disruption
// ---------------------------------------------------------------------------

struct Stream {
    listeners: Vec<Reader>,
    senders: Vec<JoinHandle<SenderOutcome>>,
    acked: Arc<AtomicUsize>,
    total: usize,
}

/// `listeners_per_node` listeners and one sender on every node, all in room
/// 1; the senders start at once.
async fn start_stream(
    cluster: &Cluster,
    listeners_per_node: usize,
    per_sender: usize,
    within: Duration,
) -> Stream {
    let n = cluster.nodes.len();
    let mut listeners = Vec::new();
    for k in 0..listeners_per_node {
        for i in 0..n {
            let user = cluster.user(&format!("listener{k}_{}", cluster.node(i).name));
            let (c, _) = cluster.connect(i, &user, ROOM).await;
            listeners.push(spawn_reader(c, Vec::new()));
        }
    }
    let mut clients: Vec<(WsClient, User, String)> = Vec::new();
    for i in 0..n {
        let name = cluster.node(i).name.clone();
        let user = cluster.user(&format!("sender_{name}"));
        let (c, _) = cluster.connect(i, &user, ROOM).await;
        clients.push((c, user, format!("s{name}")));
    }
    let acked = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let deadline = t0 + within;
    let senders = clients
        .into_iter()
        .map(|(c, user, tag)| {
            let plan = SenderPlan {
                tag,
                count: per_sender,
            };
            tokio::spawn(run_sender(
                c,
                user.id,
                plan,
                Arc::clone(&acked),
                t0,
                deadline,
            ))
        })
        .collect();
    Stream {
        listeners,
        senders,
        acked,
        total: n * per_sender,
    }
}

/// Wait until `at` messages were acknowledged in all.
async fn wait_acked(stream: &Stream, at: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while stream.acked.load(Ordering::SeqCst) < at {
        assert!(
            Instant::now() < deadline,
            "only {} of {at} messages acknowledged within {within:?}",
            stream.acked.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Let the senders finish, then check everything against SQL; panics with
/// every problem found and a summary. `restored_at`: Unix time the
/// disruption ended (to count messages stored but refused before it).
/// Returns how many (message, connection) deliveries did not come live.
async fn finish_stream(cluster: &Cluster, stream: Stream, restored_at: f64, what: &str) -> f64 {
    let Stream {
        listeners,
        senders,
        total,
        ..
    } = stream;
    let conns_per_node = (listeners.len() + senders.len()) / cluster.nodes.len();
    let mut problems = Vec::new();
    let mut logs = Vec::new();
    let mut readers = listeners;
    let mut sender_labels = Vec::new();
    for h in senders {
        let (c, traffic, log, result) = h.await.expect("sender task");
        if let Err(e) = result {
            problems.push(format!("{}: {e}", log.label));
        }
        sender_labels.push(log.label.clone());
        readers.push(spawn_reader(c, traffic));
        logs.push(log);
    }
    cluster.report(&format!("{what}: senders done"));
    let rows = stored_messages(cluster, ROOM).await;
    let n = rows.len() as i64;
    let received = finish_readers(readers, n, Duration::from_secs(10)).await;
    let log_refs: Vec<&SenderLog> = logs.iter().collect();
    problems.extend(check_sql_against_acks(&rows, &log_refs, total));
    for (label, got, reader_problems) in &received {
        problems.extend(reader_problems.iter().cloned());
        match logs.iter().find(|l| &l.label == label) {
            Some(log) => problems.extend(check_sender_stream(log, got, &rows)),
            None => problems.extend(check_exact_stream(label, got, &rows)),
        }
    }

    // Summary (printed always; shown by nextest on failure or with --no-capture).
    let retried: HashSet<(i64, &str)> = logs
        .iter()
        .flat_map(|l| {
            l.acks
                .iter()
                .filter(|a| a.attempts > 1)
                .map(move |a| (l.user_id, a.cmid.as_str()))
        })
        .collect();
    let refused_but_stored: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.created < restored_at
                && r.client_msg_id
                    .as_deref()
                    .is_some_and(|c| retried.contains(&(r.user_id, c)))
        })
        .map(|r| format!("seq {} {}", r.seq, r.client_msg_id.as_deref().unwrap_or("")))
        .collect();
    let (stats, missed_live) = node_stats(cluster, rows.len(), conns_per_node).await;
    let mut summary = format!(
        "[{what}] {n} rows in SQL; {} readers; messages answered `unavailable` although stored \
         (recovered by retry + gap filling): [{}]\n  {stats}\n",
        received.len(),
        refused_but_stored.join(", "),
    );
    for l in &logs {
        let _ = writeln!(summary, "  {}", sender_summary(l));
    }
    for (label, got, _) in &received {
        let seqs: Vec<i64> = got.iter().filter_map(|d| d["seq"].as_i64()).collect();
        let _ = writeln!(
            summary,
            "  {label}: {} frames: {}",
            seqs.len(),
            ranges(&seqs)
        );
    }
    eprintln!("{summary}");
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  {}\n\n{summary}",
        problems.len(),
        problems.join("\n  ")
    );
    cluster.report(&format!("{what}: every check passed"));
    missed_live
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// 3 nodes, one Redis, one PostgreSQL. Two listeners and one sender per node
/// in room 1; each sender sends 40 messages (20 ms apart), retrying with the
/// same `client_msg_id` on `unavailable`. After 30 acknowledgements Redis is
/// killed for 3 s and started again on the same port (empty). Then: SQL holds
/// seq 1..=120, exactly the acknowledged messages, each once with the
/// acknowledged id and seq; every listener received exactly 1..=120 in order,
/// matching SQL frame by frame; every sender too (apart from the direct
/// answers to its own retries).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_mid_stream_loses_and_duplicates_nothing() {
    const PER_SENDER: usize = 40;
    const DOWN_AFTER_ACKS: usize = 30;
    const DOWN_FOR: Duration = Duration::from_secs(3);
    let mut cluster = Cluster::start(Opts::nodes(3)).await;
    let stream = start_stream(&cluster, 2, PER_SENDER, Duration::from_secs(28)).await;
    wait_acked(&stream, DOWN_AFTER_ACKS, Duration::from_secs(10)).await;

    cluster.redis_mut().kill().await;
    let down = Instant::now();
    cluster.report(&format!(
        "Redis killed after {} acknowledgements",
        stream.acked.load(Ordering::SeqCst)
    ));
    tokio::time::sleep_until(down + DOWN_FOR).await;
    let acked_while_down = stream.acked.load(Ordering::SeqCst);
    cluster.redis_mut().restart().await;
    let restored_at = unix_now();
    let up = Instant::now();
    cluster.report(&format!(
        "Redis restarted on port {} ({acked_while_down} acknowledged so far)",
        cluster.redis().port
    ));
    for node in &cluster.nodes {
        node.wait_bus(true, Duration::from_secs(12)).await;
    }
    cluster.wait_numsub(ROOM, 3, Duration::from_secs(10)).await;
    eprintln!(
        "[guarantees] all nodes ready and re-subscribed {:.1?} after Redis came back",
        up.elapsed()
    );
    finish_stream(&cluster, stream, restored_at, "redis restart").await;
}

/// 2 nodes. Two listeners and one sender per node; each sender sends 40
/// messages. Three times during the stream (after 20, 40 and 60
/// acknowledgements) `CLIENT KILL TYPE pubsub` drops both nodes' subscriber
/// connections, repeatedly for 300 ms (each kill alone is healed in a few
/// milliseconds and rarely catches a message), so that messages get published
/// while a node has no subscription; the test waits for both nodes to
/// re-subscribe before the next round. What a node missed must reach its
/// connections through gap filling. Same checks as above, against SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_kill_of_a_subscriber_connection_is_healed() {
    const PER_SENDER: usize = 40;
    const BURST: Duration = Duration::from_millis(300);
    let cluster = Cluster::start(Opts::nodes(2)).await;
    let stream = start_stream(&cluster, 2, PER_SENDER, Duration::from_secs(30)).await;
    let mut restored_at = unix_now();
    for at in [20, 40, 60] {
        wait_acked(&stream, at, Duration::from_secs(10)).await;
        let started = Instant::now();
        let (mut kills, mut killed) = (0, 0);
        while started.elapsed() < BURST {
            let out = cluster
                .redis()
                .cli(&["CLIENT", "KILL", "TYPE", "pubsub"])
                .await
                .unwrap_or_else(|e| panic!("CLIENT KILL TYPE pubsub: {e}"));
            kills += 1;
            killed += out
                .trim()
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("CLIENT KILL TYPE pubsub answered {out:?}"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            killed >= 2,
            "CLIENT KILL TYPE pubsub killed {killed} connection(s) in {kills} tries: both \
             nodes' subscriber connections should have been killed"
        );
        cluster.wait_numsub(ROOM, 2, Duration::from_secs(10)).await;
        restored_at = unix_now();
        cluster.report(&format!(
            "round at {at} acknowledgements: {kills} CLIENT KILLs over {BURST:?} killed {killed} \
             subscriber connection(s); both nodes re-subscribed {:.0?} after the first",
            started.elapsed()
        ));
    }
    for node in &cluster.nodes {
        node.wait_bus(true, Duration::from_secs(10)).await;
    }
    let missed_live = finish_stream(&cluster, stream, restored_at, "pubsub client kill").await;
    // Otherwise the scenario proved nothing about gap filling.
    assert!(
        missed_live > 0.0,
        "the kills made no node miss a message live (per messages_delivered_total): \
         nothing needed healing, so this run tested nothing"
    );
}

/// 2 nodes. A sender on A sends 20 messages, each after the previous one's
/// acknowledgement; right after the last acknowledgement A is killed with
/// SIGKILL. Every acknowledged message is in SQL with its acknowledged id and
/// seq; a listener on B received each exactly once, in seq order; the
/// sender, reconnecting to B with `since_seq` = the last seq it saw and
/// resending its last `client_msg_id`, gets the original back (same id and
/// seq), nothing is replayed or broadcast, and no row is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_messages_survive_kill_9_of_their_node() {
    const COUNT: usize = 20;
    let mut cluster = Cluster::start(Opts::nodes(2)).await;
    let (sender, listener) = (cluster.user("sender"), cluster.user("listener"));
    let (l, _) = cluster.connect(1, &listener, ROOM).await;
    let reader = spawn_reader(l, Vec::new());
    let (mut s, _) = cluster.connect(0, &sender, ROOM).await;

    let mut acks: Vec<Value> = Vec::new();
    let mut seen: Vec<Value> = Vec::new();
    for i in 0..COUNT {
        let (cmid, content) = (format!("k-{i}"), format!("durable {i}"));
        s.send_message(ROOM, &content, &cmid).await;
        let ack = loop {
            let f = match s.rx.next_within(ANSWER_WAIT).await {
                Ok(f) => f,
                Err(e) => panic!("{}: no acknowledgement of {cmid}: {e}", s.label),
            };
            match f["type"].as_str() {
                Some("message") => {
                    seen.push(f["data"].clone());
                    if f["data"]["client_msg_id"] == cmid.as_str() {
                        break f["data"].clone();
                    }
                }
                Some("error") => panic!("{}: {cmid} refused: {f}", s.label),
                _ => {}
            }
        };
        acks.push(ack);
        if i + 1 < COUNT {
            tokio::time::sleep(PACE).await;
        }
    }
    // Right after the last acknowledgement.
    cluster.nodes[0].kill9();
    cluster.report(&format!(
        "node A killed right after acknowledgement {COUNT}"
    ));
    let last = acks.last().unwrap().clone();

    let mut problems = Vec::new();
    // Every acknowledged message is stored with its seq (and id, content, id).
    let rows = stored_messages(&cluster, ROOM).await;
    if rows.len() != COUNT {
        problems.push(format!(
            "SQL has {} rows for room {ROOM}, {COUNT} messages were acknowledged: seqs {}",
            rows.len(),
            ranges(&rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        ));
    }
    for a in &acks {
        if let Err(e) = matches_row(a, &rows) {
            problems.push(format!("acknowledged {}: {e}", a["client_msg_id"]));
        }
    }
    let ack_seqs: Vec<i64> = acks.iter().map(|a| a["seq"].as_i64().unwrap()).collect();
    if ack_seqs != (1..=COUNT as i64).collect::<Vec<_>>() {
        problems.push(format!("acknowledged seqs: {}", ranges(&ack_seqs)));
    }
    // What the sender saw before the kill: its own messages, each once, in order.
    problems.extend(check_exact_stream(
        &format!("{} (before the kill)", s.label),
        &seen,
        &rows,
    ));
    drop(s);

    // The listener on B got every one of them; keep it reading while the
    // sender resumes, to see that the retry is not broadcast again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.got.lock().unwrap().len() < COUNT && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The sender resumes on B from the last seq it saw and resends its last id.
    let since = seen.last().and_then(|d| d["seq"].as_i64()).unwrap_or(0);
    let b = cluster.node(1);
    let url = format!(
        "ws://127.0.0.1:{}/ws?room_id={ROOM}&token={}&since_seq={since}",
        b.port, sender.token
    );
    let label = format!(
        "{}@{} (resumed, since_seq={since})",
        sender.username, b.name
    );
    let mut r = WsClient::connect(&url, &label)
        .await
        .unwrap_or_else(|(status, body)| panic!("{label}: upgrade refused: {status} {body}"));
    let first = r.recv_json().await;
    assert_eq!(
        first["type"], "online_users",
        "{label}: first frame: {first}"
    );
    let last_cmid = last["client_msg_id"].as_str().unwrap().to_owned();
    let last_content = last["content"].as_str().unwrap().to_owned();
    r.send_message(ROOM, &last_content, &last_cmid).await;
    let mut after_resume = Vec::new();
    let answer_by = Instant::now() + ANSWER_WAIT;
    let answer = loop {
        match r
            .rx
            .next_within(answer_by.saturating_duration_since(Instant::now()))
            .await
        {
            Ok(f) if f["type"] == "message" && f["data"]["client_msg_id"] == last_cmid.as_str() => {
                break Some(f["data"].clone());
            }
            Ok(f) if f["type"] == "message" => after_resume.push(f["data"].clone()),
            Ok(f) if f["type"] == "error" => {
                problems.push(format!("{label}: resend of {last_cmid} refused: {f}"));
                break None;
            }
            Ok(_) => {}
            Err(e) => {
                problems.push(format!(
                    "{label}: no answer to the resend of {last_cmid}: {e}"
                ));
                break None;
            }
        }
    };
    if let Some(a) = &answer {
        let key = |d: &Value| {
            (
                d["id"].as_i64(),
                d["seq"].as_i64(),
                d["user_id"].as_i64(),
                d["content"].as_str().map(str::to_owned),
                d["created_at"].as_str().map(str::to_owned),
            )
        };
        if key(a) != key(&last) {
            problems.push(format!(
                "{label}: the resend of {last_cmid} was answered with {a}, the original was {last}"
            ));
        }
    }
    // Nothing else: no replay after since_seq (it was the last seq), no second copy.
    loop {
        match r.rx.next_within(LATE_WINDOW).await {
            Ok(f) if f["type"] == "message" => after_resume.push(f["data"].clone()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if !after_resume.is_empty() {
        problems.push(format!(
            "{label}: unexpected message frames after resuming at since_seq={since}: {after_resume:?}"
        ));
    }
    let received = finish_readers(vec![reader], COUNT as i64, Duration::from_secs(1)).await;
    let rows_after = stored_messages(&cluster, ROOM).await;
    for (label, got, reader_problems) in &received {
        problems.extend(reader_problems.iter().cloned());
        problems.extend(check_exact_stream(label, got, &rows));
    }
    if rows_after.len() != rows.len() {
        problems.push(format!(
            "the resend of {last_cmid} stored a new row: {} rows before, {} after: {:?}",
            rows.len(),
            rows_after.len(),
            &rows_after[rows.len().min(rows_after.len())..]
        ));
    }
    let listener_seqs: Vec<i64> = received[0]
        .1
        .iter()
        .filter_map(|d| d["seq"].as_i64())
        .collect();
    let summary = format!(
        "[kill -9] {} acknowledged, SQL rows {} then {}; listener got {}; resend answered with {}",
        acks.len(),
        rows.len(),
        rows_after.len(),
        ranges(&listener_seqs),
        answer.map_or("nothing".into(), |a| format!(
            "id {} seq {}",
            a["id"], a["seq"]
        ))
    );
    eprintln!("{summary}");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n{summary}",
        problems.len(),
        problems.join("\n  ")
    );
    cluster.report("kill -9 scenario: every check passed");
}
