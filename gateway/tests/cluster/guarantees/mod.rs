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

mod result_check;
mod traffic;

use result_check::*;
use traffic::*;

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
