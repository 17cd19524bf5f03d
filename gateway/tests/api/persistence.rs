use crate::helpers::spawn_app;
use serde_json::json;

#[tokio::test]
async fn messages_survive_a_restart_of_the_node() {
    let app = spawn_app().await;
    let (alice_id, alice, mut a) = app.user_in_general("alice").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        a.send_json(json!({"type": "message", "content": format!("persist {i}")}))
            .await;
        sent.push(a.recv_type("message").await["data"].clone());
    }
    drop(a);
    let app = app.restart().await;

    let stored = app.stored_messages(1, 10).await;
    assert_eq!(stored.len(), 5);
    for (record, frame) in stored.iter().rev().zip(&sent) {
        assert_eq!(record.id.0, frame["id"].as_i64().unwrap());
        assert_eq!(record.seq, frame["seq"].as_i64().unwrap());
        assert_eq!(record.user_id.0, alice_id);
        assert_eq!(record.content, frame["content"].as_str().unwrap());
        assert_eq!(
            gateway::clock::rfc3339(record.created_at),
            frame["created_at"].as_str().unwrap()
        );
    }
    // The same token still works after the restart (same configured secret), and seq continues.
    let mut a = app.ws_in_general(&alice).await;
    assert_eq!(a.say("after restart").await["data"]["seq"], 6);
}

#[tokio::test]
async fn online_status_and_last_seen_are_recorded() {
    let app = spawn_app().await;
    let (id, t) = app.register("status").await;
    let id = shared::ids::UserId(id);
    let store = &app.app_state.store;
    let c = app.ws_in_general(&t).await;
    let until = tokio::time::Instant::now() + crate::helpers::WAIT;
    while !store.find_user(id).await.unwrap().unwrap().is_online {
        assert!(
            tokio::time::Instant::now() < until,
            "is_online never became true"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    c.close().await;
    loop {
        let u = store.find_user(id).await.unwrap().unwrap();
        if !u.is_online && u.last_seen.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "offline status never written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn stopping_the_node_flushes_the_online_status() {
    let app = crate::helpers::spawn_with(|s| {
        s.server.drain_window_secs = 0;
        s.server.shutdown_timeout_secs = 3;
    })
    .await;
    let (id, _, mut c) = app.user_in_general("leaver").await;
    let store = app.app_state.store.clone();
    let id = shared::ids::UserId(id);
    let until = tokio::time::Instant::now() + crate::helpers::WAIT;
    while !store.find_user(id).await.unwrap().unwrap().is_online {
        assert!(tokio::time::Instant::now() < until, "never online");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.stopper.stop().await;
    assert_eq!(c.recv_close().await, Some(1012));
    // A fresh pool: the node's pooled connections may belong to its
    // (now stopped) worker runtimes.
    let store = gateway::store::Store::connect(app.settings.database.url.expose(), 1)
        .await
        .unwrap();
    let user = store.find_user(id).await.unwrap().unwrap();
    assert!(
        !user.is_online && user.last_seen.is_some(),
        "written before stop() returned"
    );
}
