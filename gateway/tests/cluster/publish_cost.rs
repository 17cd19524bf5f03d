//! One published message costs one Redis PUBLISH, whatever the room's
//! size. A room with members on three nodes (two each) gets N chat
//! messages; Redis's own `INFO commandstats` must count exactly N more
//! PUBLISH calls (the bus's publish script calls PUBLISH once per envelope;
//! Redis counts commands run inside scripts), however many members and nodes
//! receive each message.

use crate::helpers::{Cluster, Opts, WsClient};
use std::time::Duration;

const ROOM: i64 = 1;
const N: u64 = 20;

/// `calls=` of `cmdstat_<command>` in `INFO commandstats` (0 when never called).
async fn calls(cluster: &Cluster, command: &str) -> u64 {
    let info = cluster
        .redis()
        .cli(&["INFO", "commandstats"])
        .await
        .unwrap_or_else(|e| panic!("INFO commandstats: {e}"));
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .map(|rest| {
            rest.split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("unparsable stats line for {command}: {rest}"))
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publish_per_message_whatever_the_room_size() {
    let cluster = Cluster::start(Opts::nodes(3)).await;
    let mut clients: Vec<WsClient> = Vec::new();
    let mut users = Vec::new();
    for i in 0..6 {
        let user = cluster.user(&format!("u{i}"));
        let (c, _) = cluster.connect(i % 3, &user, ROOM).await;
        clients.push(c);
        users.push(user);
    }
    cluster.wait_numsub(ROOM, 3, Duration::from_secs(5)).await;
    // Presence settles first: the first member has received the user_joined
    // of each of the five others (in whatever order the nodes published
    // them), so no join announcement is published inside the measured window.
    let mut joined: Vec<i64> = Vec::new();
    while joined.len() < 5 {
        let j = clients[0].recv_type("user_joined").await;
        joined.push(j["data"]["user"]["id"].as_i64().unwrap());
    }
    joined.sort();
    let others: Vec<i64> = users[1..].iter().map(|u| u.id).collect();
    assert_eq!(joined, others, "user_joined seen by the first member");

    let before = calls(&cluster, "publish").await;
    let sharded_before = calls(&cluster, "spublish").await;
    for k in 0..N {
        let content = format!("m{k}");
        clients[0].send_message(ROOM, &content, &content).await;
    }
    // Every member on every node receives every message.
    for c in clients.iter_mut() {
        for k in 0..N {
            let m = c.recv_type("message").await;
            assert_eq!(m["data"]["content"], format!("m{k}"), "{}", c.label);
        }
    }
    let published = calls(&cluster, "publish").await - before;
    assert_eq!(
        published, N,
        "{N} messages to a room of 6 members on 3 nodes cost {published} PUBLISH calls"
    );
    assert_eq!(
        calls(&cluster, "spublish").await,
        sharded_before,
        "SPUBLISH is not used on a single Redis"
    );
    cluster.report("publish cost scenario done");
}
