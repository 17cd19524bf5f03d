//! Room messages cross nodes exactly once, in each sender's order.

use crate::helpers::{Cluster, FrameReader, Opts, WsClient, send_on};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const PER_SENDER: usize = 100;
const ROOM: i64 = 1;

/// Read until `expected` `message` frames have arrived (other frames but
/// `error` are skipped), bounded by `within` overall.
async fn collect_messages(rx: &mut FrameReader, expected: usize, within: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::with_capacity(expected);
    while got.len() < expected {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match rx.next_within(left).await {
            Ok(v) if v["type"] == "message" => got.push(v),
            Ok(v) if v["type"] == "error" => panic!("{}: error frame: {v}", rx.label),
            Ok(_) => {}
            Err(e) => panic!(
                "{}: got {} of {expected} messages, then: {e}",
                rx.label,
                got.len()
            ),
        }
    }
    got
}

/// Every `message` frame arriving within `within`.
async fn drain_messages(rx: &mut FrameReader, within: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match rx.next_within(left).await {
            Ok(v) if v["type"] == "message" => got.push(v),
            Ok(v) if v["type"] == "error" => panic!("{}: error frame: {v}", rx.label),
            Ok(_) => {}
            Err(_) => return got,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_every_node_once_and_in_sender_order() {
    let cluster = Cluster::start(Opts::nodes(3)).await;

    // Senders on A and B, plain receivers on A, B and C; everyone in room 1.
    let sender_a = cluster.user("sender_a");
    let sender_b = cluster.user("sender_b");
    let recv_a = cluster.user("recv_a");
    let recv_b = cluster.user("recv_b");
    let recv_c = cluster.user("recv_c");
    let mut clients: Vec<(WsClient, Option<&'static str>)> = Vec::new();
    for (node, user, sends) in [
        (0, &recv_a, None),
        (1, &recv_b, None),
        (2, &recv_c, None),
        (0, &sender_a, Some("A")),
        (1, &sender_b, Some("B")),
    ] {
        let (c, _) = cluster.connect(node, user, ROOM).await;
        clients.push((c, sends));
    }
    let total = 2 * PER_SENDER;

    // Everyone collects while both senders send concurrently.
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(mut client, sends)| {
            tokio::spawn(async move {
                let label = client.label.clone();
                let WsClient { tx, rx, .. } = &mut client;
                let send = async {
                    if let Some(tag) = sends {
                        for i in 0..PER_SENDER {
                            send_on(
                                tx,
                                &label,
                                json!({"type": "message", "room_id": ROOM,
                                       "content": format!("{tag}-{i}"),
                                       "client_msg_id": format!("{tag}{i}")}),
                            )
                            .await;
                        }
                    }
                };
                let (_, mut got) =
                    tokio::join!(send, collect_messages(rx, total, Duration::from_secs(20)));
                // Anything arriving after the expected count (a late duplicate)
                // is kept for the checks below.
                got.extend(drain_messages(&mut client.rx, Duration::from_millis(500)).await);
                (label, got)
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("client task"));
    }
    cluster.report("all 5 clients received 200 messages");

    // (content) -> (id, seq, user_id) as the first receiver saw it; every
    // receiver must see the same stored message for each content.
    let mut reference: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for (label, got) in &results {
        for tag in ["A", "B"] {
            let from: Vec<&Value> = got
                .iter()
                .filter(|m| {
                    m["data"]["content"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{tag}-"))
                })
                .collect();
            let contents: Vec<&str> = from
                .iter()
                .map(|m| m["data"]["content"].as_str().unwrap())
                .collect();
            let expected: Vec<String> = (0..PER_SENDER).map(|i| format!("{tag}-{i}")).collect();
            assert_eq!(
                contents, expected,
                "{label}: messages from sender {tag} missing, duplicated or out of order"
            );
            // The sender's order is also the storage order.
            let seqs: Vec<i64> = from
                .iter()
                .map(|m| m["data"]["seq"].as_i64().unwrap())
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{label}: seq of sender {tag} not increasing: {seqs:?}"
            );
            for (i, m) in from.iter().enumerate() {
                assert_eq!(m["room_id"], ROOM, "{label}: {m}");
                assert_eq!(
                    m["data"]["client_msg_id"],
                    format!("{tag}{i}"),
                    "{label}: {m}"
                );
            }
        }
        assert_eq!(got.len(), total, "{label}: number of messages received");
        for m in got {
            let d = &m["data"];
            let key = d["content"].as_str().unwrap().to_owned();
            let this = (
                d["id"].as_i64().unwrap(),
                d["seq"].as_i64().unwrap(),
                d["user_id"].as_i64().unwrap(),
            );
            let first = *reference.entry(key.clone()).or_insert(this);
            assert_eq!(
                first, this,
                "{label}: message {key:?} differs between receivers"
            );
        }
    }
    // seq: unique per room, and exactly 1..=200 (fresh database, gap-free counter).
    let seqs: HashSet<i64> = reference.values().map(|(_, seq, _)| *seq).collect();
    assert_eq!(seqs.len(), total, "duplicate seq values");
    assert_eq!(
        seqs,
        (1..=total as i64).collect::<HashSet<i64>>(),
        "seq values are not 1..={total}"
    );
    let ids: HashSet<i64> = reference.values().map(|(id, _, _)| *id).collect();
    assert_eq!(ids.len(), total, "duplicate message ids");
    for (content, (_, _, user)) in &reference {
        let expected = if content.starts_with("A-") {
            sender_a.id
        } else {
            sender_b.id
        };
        assert_eq!(*user, expected, "user_id of {content}");
    }
}
