//! Scenarios 2 and 4: presence across nodes (`online_users`, `user_joined`,
//! `user_left` with connections on several nodes), a node killed with
//! SIGKILL whose users expire from presence by TTL, and (in addition) a node
//! stopped with SIGTERM whose users leave at once.
//!
//! Ordering argument used below: a node publishes a connection's room events
//! one after the other and the bus keeps one order per publishing node, so a
//! "sentinel" message published by the same node after an event (or after
//! the point where an event would have been published) arrives after it.

use crate::helpers::{Cluster, Opts, User, WsClient};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ROOM: i64 = 1;

fn assert_online(frame: &Value, users: &[&User], label: &str) {
    let mut expected: Vec<Value> = users.iter().map(|u| u.public()).collect();
    expected.sort_by_key(|u| u["id"].as_i64());
    assert_eq!(
        frame,
        &json!({"type": "online_users", "room_id": ROOM, "data": {"users": expected}}),
        "{label}: online_users"
    );
}

fn joined(user: &User) -> Value {
    json!({"type": "user_joined", "room_id": ROOM, "data": {"user": user.public()}})
}

fn left(user: &User) -> Value {
    json!({"type": "user_left", "room_id": ROOM, "data": {"user_id": user.id}})
}

/// The next frame must be exactly `expected`.
async fn expect_frame(c: &mut WsClient, expected: &Value, why: &str) {
    let got = c.recv_json().await;
    assert_eq!(&got, expected, "{}: {why}", c.label);
}

/// The next frame must be the chat message `content` from `from`.
async fn expect_message(c: &mut WsClient, from: &User, content: &str, why: &str) {
    let got = c.recv_json().await;
    assert_eq!(
        (
            got["type"].as_str(),
            got["data"]["content"].as_str(),
            got["data"]["user_id"].as_i64()
        ),
        (Some("message"), Some(content), Some(from.id)),
        "{}: {why}; got {got}",
        c.label
    );
}

/// The next frame on each of `clients` must be the chat message `content`
/// from `from` ([`expect_message`]).
async fn each_hears<const N: usize>(
    clients: [&mut WsClient; N],
    from: &User,
    content: &str,
    why: &str,
) {
    for c in clients {
        expect_message(c, from, content, why).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shared_across_nodes() {
    let cluster = Cluster::start(Opts::nodes(3)).await;
    let [alice, bob, carol, dave, erin] = cluster.users(["alice", "bob", "carol", "dave", "erin"]);

    // alice on A, bob on B, carol on C: each newcomer sees the others, each
    // member hears user_joined from the other nodes.
    let (mut a, online) = cluster.connect(0, &alice, ROOM).await;
    assert_online(&online, &[&alice], "alice@A");
    let (mut b, online) = cluster.connect(1, &bob, ROOM).await;
    assert_online(&online, &[&alice, &bob], "bob@B");
    expect_frame(&mut a, &joined(&bob), "bob joined via B").await;
    let (mut c, online) = cluster.connect(2, &carol, ROOM).await;
    assert_online(&online, &[&alice, &bob, &carol], "carol@C");
    expect_frame(&mut a, &joined(&carol), "carol joined via C").await;
    expect_frame(&mut b, &joined(&carol), "carol joined via C").await;

    // dave's first connection, on A: one user_joined everywhere.
    let (mut d1, online) = cluster.connect(0, &dave, ROOM).await;
    assert_online(&online, &[&alice, &bob, &carol, &dave], "dave@A");
    for x in [&mut a, &mut b, &mut c] {
        expect_frame(x, &joined(&dave), "dave's first connection (A)").await;
    }

    // dave's second connection, on B: online_users lists dave once, and no
    // second user_joined. Sentinel: a message sent on d2 is published by B
    // after any user_joined B would have published for d2.
    let (mut d2, online) = cluster.connect(1, &dave, ROOM).await;
    assert_online(&online, &[&alice, &bob, &carol, &dave], "dave@B");
    d2.send_message(ROOM, "d2 here", "d2-1").await;
    each_hears(
        [&mut a, &mut b, &mut c, &mut d1, &mut d2],
        &dave,
        "d2 here",
        "no user_joined for dave's second connection",
    )
    .await;

    // Closing d1 (on A) leaves dave present through d2: no user_left.
    // close_and_wait returns after A's cleanup; alice's sentinel is published
    // by A after any user_left A would have published.
    d1.close_and_wait().await;
    a.send_message(ROOM, "after d1", "a-1").await;
    each_hears(
        [&mut a, &mut b, &mut c, &mut d2],
        &alice,
        "after d1",
        "no user_left while dave is still on B",
    )
    .await;

    // Closing d2 (on B), dave's last connection: one user_left everywhere.
    d2.close_and_wait().await;
    b.send_message(ROOM, "after d2", "b-1").await;
    for x in [&mut a, &mut b, &mut c] {
        expect_frame(x, &left(&dave), "dave's last connection closed").await;
        expect_message(x, &bob, "after d2", "exactly one user_left").await;
    }

    // A newcomer no longer sees dave.
    let (_e, online) = cluster.connect(2, &erin, ROOM).await;
    assert_online(&online, &[&alice, &bob, &carol, &erin], "erin@C");
    for x in [&mut a, &mut b, &mut c] {
        expect_frame(x, &joined(&erin), "erin joined via C").await;
    }
    cluster.report("presence scenario done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_a_killed_node_leave_after_the_presence_ttl() {
    const TTL: u64 = 3;
    let mut opts = Opts::nodes(3);
    opts.presence_ttl_secs = Some(TTL);
    let mut cluster = Cluster::start(opts).await;
    let [alice, uma, carol, dan, mo] = cluster.users(["alice", "uma", "carol", "dan", "moe"]);
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut c, _) = cluster.connect(2, &carol, ROOM).await;
    expect_frame(&mut a, &joined(&carol), "carol joined").await;
    let (u, online) = cluster.connect(1, &uma, ROOM).await;
    assert_online(&online, &[&alice, &uma, &carol], "uma@B");
    expect_frame(&mut a, &joined(&uma), "uma joined via B").await;
    expect_frame(&mut c, &joined(&uma), "uma joined via B").await;

    // mo is a multi-device user: one connection on B (about to be killed),
    // one on C (surviving). One user_joined; the sentinel (sent on C after
    // mo's second connection entered) shows there was no second one.
    let (m1, _) = cluster.connect(1, &mo, ROOM).await;
    expect_frame(&mut a, &joined(&mo), "mo's first connection (B)").await;
    expect_frame(&mut c, &joined(&mo), "mo's first connection (B)").await;
    let (mut m2, online) = cluster.connect(2, &mo, ROOM).await;
    assert_online(&online, &[&alice, &uma, &carol, &mo], "mo@C");
    m2.send_message(ROOM, "mo on C", "m2-1").await;
    each_hears(
        [&mut a, &mut c, &mut m2],
        &mo,
        "mo on C",
        "no user_joined for mo's second connection",
    )
    .await;

    // kill -9 B: no cleanup, uma's and mo@B's presence entries just stop
    // being refreshed. Survivors prune at least every 2 s, so uma leaves
    // within the TTL plus that (and a second of slack).
    cluster.nodes[1].kill9();
    let killed = Instant::now();
    let bound = Duration::from_secs(TTL + 3);
    for x in [&mut a, &mut c, &mut m2] {
        let left_for = bound.saturating_sub(killed.elapsed());
        let got =
            x.rx.recv_json_within(left_for.max(Duration::from_millis(1)))
                .await;
        assert_eq!(got, left(&uma), "{}: after B was killed", x.label);
    }
    let took = killed.elapsed();
    eprintln!("[presence] user_left for uma {took:.1?} after kill -9 (ttl {TTL} s)");
    assert!(
        took <= bound,
        "user_left arrived after {took:?}, bound {bound:?}"
    );
    // Exactly one user_left (no duplicate from another node's pruning), and
    // none for mo, who is still connected through C. mo@B's entry expired no
    // later than uma's plus one refresh; 3 s covers the prunes after it.
    tokio::join!(
        a.rx.expect_silence(Duration::from_secs(3)),
        c.rx.expect_silence(Duration::from_secs(3)),
        m2.rx.expect_silence(Duration::from_secs(3)),
    );

    // mo@B's entry is gone too (so this silence proves something): the
    // room's presence holds exactly alice@A, carol@C and mo@C.
    let conns = format!("{}:{{room:{ROOM}}}:presence:conns", cluster.prefix);
    crate::helpers::eventually(
        Duration::from_secs(3),
        &format!("HLEN {conns} == 3"),
        || async {
            match cluster.redis().cli(&["HLEN", &conns]).await {
                Ok(n) if n == "3" => Ok(()),
                Ok(n) => Err(n),
                Err(e) => Err(e),
            }
        },
    )
    .await;
    m2.rx.expect_silence(Duration::from_millis(300)).await;

    // A newcomer does not see uma, and sees mo once.
    let (_d, online) = cluster.connect(0, &dan, ROOM).await;
    assert_online(&online, &[&alice, &carol, &dan, &mo], "dan@A");
    drop((u, m1));
    cluster.report("kill -9 scenario done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_a_stopped_node_leave_at_once() {
    // Default presence TTL (60 s): a user_left within a few seconds can only
    // come from the stopping node's own cleanup, not from expiry.
    let mut cluster = Cluster::start(Opts::nodes(3)).await;
    let [alice, uma, carol, dan] = cluster.users(["alice", "uma", "carol", "dan"]);
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut c, _) = cluster.connect(2, &carol, ROOM).await;
    expect_frame(&mut a, &joined(&carol), "carol joined via C").await;
    let (mut u, _) = cluster.connect(1, &uma, ROOM).await;
    expect_frame(&mut a, &joined(&uma), "uma joined via B").await;
    expect_frame(&mut c, &joined(&uma), "uma joined via B").await;

    // SIGTERM B: its clients are closed with 1012 (service restart), it exits 0,
    // and uma leaves the room for everyone else right away.
    let stopping = Instant::now();
    cluster.nodes[1].signal_term();
    assert_eq!(
        u.rx.recv_close(Duration::from_secs(10)).await,
        Some(1012),
        "close code for uma@B"
    );
    for x in [&mut a, &mut c] {
        let got = x.rx.recv_json_within(Duration::from_secs(5)).await;
        assert_eq!(got, left(&uma), "{} after B was stopped", x.label);
    }
    let status = cluster.nodes[1].wait_exited(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "node B exited with {status} after SIGTERM"
    );
    eprintln!(
        "[presence] B stopped (exit 0) {:.1?} after SIGTERM",
        stopping.elapsed()
    );
    tokio::join!(
        a.rx.expect_silence(Duration::from_millis(500)),
        c.rx.expect_silence(Duration::from_millis(500)),
    );

    let (_d, online) = cluster.connect(0, &dan, ROOM).await;
    assert_online(&online, &[&alice, &carol, &dan], "dan@A");
}
