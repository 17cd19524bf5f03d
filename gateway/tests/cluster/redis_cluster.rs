//! Redis Cluster (3 masters, no replicas) with sharded pub/sub
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
    let mut opts = Opts::nodes(3);
    opts.redis = RedisMode::Cluster;
    let cluster = Cluster::start(opts).await;
    let users = [
        cluster.user("alice"),
        cluster.user("bob"),
        cluster.user("carol"),
    ];
    let room = cluster.db.insert_room("sharded").await;

    // One user per node, all in room 1 and then in `room`.
    let mut clients = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let (c, online) = cluster.connect(i, user, 1).await;
        let expected: Vec<i64> = users[..=i].iter().map(|u| u.id).collect();
        assert_eq!(Cluster::online_ids(&online), expected, "{}", c.label);
        clients.push(c);
    }
    for c in clients.iter_mut() {
        c.send_json(json!({"type": "join_room", "room_id": room}))
            .await;
        let online = c.recv_type("online_users").await;
        assert_eq!(online["room_id"], room, "{}", c.label);
    }

    // Each room's channel is subscribed by all three nodes on the shard that owns it.
    let rc = cluster.redis_cluster.as_ref().unwrap();
    for r in [1, room] {
        let channel = cluster.room_channel(r);
        let owner = rc.owner_of(&channel).await;
        crate::helpers::eventually(
            Duration::from_secs(5),
            &format!(
                "PUBSUB SHARDNUMSUB {channel} == 3 on its shard (port {})",
                owner.port
            ),
            || async {
                match owner.numsub(&channel, true).await {
                    Ok(3) => Ok(()),
                    Ok(n) => Err(n.to_string()),
                    Err(e) => Err(e),
                }
            },
        )
        .await;
        // Classic pub/sub is not used, on any shard.
        for m in &rc.masters {
            assert_eq!(
                m.numsub(&channel, false).await.unwrap(),
                0,
                "PUBSUB NUMSUB {channel} on port {}",
                m.port
            );
        }
    }

    // Messages cross nodes in both rooms, from every node to every node.
    for (r, tag) in [(1, "general"), (room, "second")] {
        for (i, from) in users.iter().enumerate() {
            let content = format!("{tag} from {}", cluster.node(i).name);
            clients[i]
                .send_message(r, &content, &format!("{i}-{tag}"))
                .await;
            for c in clients.iter_mut() {
                expect_next_message(c, r, from, &content).await;
            }
        }
    }
    cluster.report("Redis Cluster scenario done");
}
