//! Scenario 7: Redis Cluster (3 masters, no replicas) with sharded pub/sub
//! (`CHAT__REDIS__SHARDED_PUBSUB=true`): room traffic crosses nodes, and the
//! shard that owns a room's channel reports the nodes' subscriptions.

use crate::helpers::{Cluster, Opts, RedisMode, User, WsClient};
use serde_json::json;
use std::time::Duration;

async fn expect_next_message(c: &mut WsClient, room: i64, from: &User, content: &str) {
    let m = c.recv_type("message").await;
    assert_eq!(
        (
            m["room_id"].as_i64(),
            m["data"]["content"].as_str(),
            m["data"]["user_id"].as_i64()
        ),
        (Some(room), Some(content), Some(from.id)),
        "{}: got {m}",
        c.label
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_pubsub_on_a_redis_cluster() {
    let mut opts = Opts::nodes(2);
    opts.redis = RedisMode::Cluster;
    let cluster = Cluster::start(opts).await;
    let (alice, bob) = (cluster.user("alice"), cluster.user("bob"));
    let room = cluster.db.insert_room("sharded").await;

    let (mut a, _) = cluster.connect(0, &alice, 1).await;
    let (mut b, online) = cluster.connect(1, &bob, 1).await;
    assert_eq!(Cluster::online_ids(&online), vec![alice.id, bob.id]);
    assert_eq!(
        a.recv_json().await,
        json!({"type": "user_joined", "room_id": 1, "data": {"user": bob.public()}})
    );
    for c in [&mut a, &mut b] {
        c.send_json(json!({"type": "join_room", "room_id": room}))
            .await;
        let online = c.recv_type("online_users").await;
        assert_eq!(online["room_id"], room, "{}", c.label);
    }

    // Each room's channel is subscribed by both nodes on the shard that owns it.
    let rc = cluster.redis_cluster.as_ref().unwrap();
    for r in [1, room] {
        let channel = cluster.room_channel(r);
        let owner = rc.owner_of(&channel).await;
        crate::helpers::eventually(
            Duration::from_secs(5),
            &format!(
                "PUBSUB SHARDNUMSUB {channel} == 2 on its shard (port {})",
                owner.port
            ),
            || async {
                match owner.numsub(&channel, true).await {
                    Ok(2) => Ok(()),
                    Ok(n) => Err(n.to_string()),
                    Err(e) => Err(e),
                }
            },
        )
        .await;
        // Classic pub/sub is not used.
        assert_eq!(
            owner.numsub(&channel, false).await.unwrap(),
            0,
            "PUBSUB NUMSUB {channel}"
        );
    }

    // Messages cross nodes in both rooms, both ways.
    for (r, tag) in [(1, "general"), (room, "second")] {
        let content = format!("{tag} from A");
        a.send_message(r, &content, &format!("a-{tag}")).await;
        expect_next_message(&mut a, r, &alice, &content).await;
        expect_next_message(&mut b, r, &alice, &content).await;
        let content = format!("{tag} from B");
        b.send_message(r, &content, &format!("b-{tag}")).await;
        expect_next_message(&mut b, r, &bob, &content).await;
        expect_next_message(&mut a, r, &bob, &content).await;
    }
    cluster.report("Redis Cluster scenario done");
}
