//! A fill that cannot read the history (the database away for a moment, a
//! pool timeout) delivers nothing and is tried again; it never moves the
//! connection's cursor past messages it did not deliver (a failed
//! page read used to skip to the room's newest seq with a `recovery_partial`,
//! so every message in between, the sender's own echo among them, was gone
//! for good while the connection stayed up).

use crate::helpers::spawn_app;
use sea_orm::ConnectionTrait;
use serde_json::json;

#[tokio::test]
async fn a_fill_whose_history_read_fails_is_retried_not_skipped() {
    let app = spawn_app().await;
    let (_, alice) = app.register("alice").await;
    let (status, _) = app.join_room(&alice, 1).await;
    assert_eq!(status, 200);
    for i in 1..=3 {
        let (status, body) = app
            .post_message(&alice, 1, json!({"content": format!("m{i}")}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // The history becomes unreadable: the messages table is renamed away
    // (admission and presence read other tables, so the connection enters).
    let db = sea_orm::Database::connect(app.settings.database.url.expose())
        .await
        .expect("a second connection to the node's database");
    db.execute_unprepared("ALTER TABLE messages RENAME TO messages_away")
        .await
        .unwrap();
    let mut c = app.ws(&alice, "&since_seq=0").await;
    c.recv_type("online_users").await;
    // Its fill fails now: no recovery_partial, no message.
    c.expect_silence(400).await;
    db.execute_unprepared("ALTER TABLE messages_away RENAME TO messages")
        .await
        .unwrap();
    for seq in 1..=3 {
        let m = c.recv_type("message").await;
        assert_eq!(m["data"]["seq"], seq, "{m}");
    }
    // And the live stream continues in order after the retried fill.
    assert_eq!(c.say("m4").await["data"]["seq"], 4);
    c.expect_silence(200).await;
}
