//! [`spawn_nodes`] is a real cluster on every backend: on the embedded
//! default, N nodes in this process linked by the in-process bus and sharing
//! one presence registry and one per-user connection count, so the
//! multi-node scenarios of this suite run in the default pass too.

use crate::helpers::spawn_nodes_with;
use crate::setup::online_ids;
use serde_json::json;

#[tokio::test]
async fn nodes_share_the_bus_the_presence_and_the_per_user_cap() {
    let nodes = spawn_nodes_with(2, |s| s.limits.max_connections_per_user = 2).await;
    assert_eq!(nodes.len(), 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    assert_ne!(a.port, b.port, "two servers");
    let (alice_id, alice) = a.register("alice").await;
    let (_, bob) = b.register("bob").await;
    let mut on_a = a.ws(&alice, "").await;
    on_a.recv_type("online_users").await;
    // Presence is shared: bob, arriving on B, sees alice who is on A...
    let mut on_b = b.ws(&bob, "").await;
    let online = on_b.recv_type("online_users").await;
    assert!(online_ids(&online).contains(&alice_id), "{online}");
    // ...and A hears of him through the bus, as his message.
    assert_eq!(
        on_a.recv_type("user_joined").await["data"]["user"]["username"],
        "bob"
    );
    on_b.send_json(json!({"type": "message", "content": "across"}))
        .await;
    assert_eq!(on_a.recv_type("message").await["data"]["content"], "across");
    // The per-user cap counts connections on every node: alice has one on
    // A, a second on B is her last.
    let _second = b.ws(&alice, "").await;
    assert_eq!(a.refused_ws(&alice).await.0, 429, "a third is refused");
}
