//! Hostile input over a real socket: the node answers, closes with a
//! documented code where it must, and keeps serving everyone else.

use crate::helpers::spawn_app;
use futures_util::SinkExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn random_frame(rng: &mut StdRng) -> String {
    let pieces = [
        r#"{"type":"message","content":"#,
        r#"{"type":"join_room","room_id":"#,
        r#"{"type":"leave_room""#,
        r#"{"type":"ping"}"#,
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "\"",
        "null",
        "1e999",
        "-0",
        "99999999999999999999999",
        "\u{200b}",
        "\u{0}",
        "\\u0000",
        "true",
        r#""room_id""#,
        "💬",
        "\\",
        "\n",
    ];
    let n = rng.random_range(0..12);
    (0..n)
        .map(|_| pieces[rng.random_range(0..pieces.len())])
        .collect()
}

#[tokio::test]
async fn random_garbage_never_breaks_the_connection_or_the_node() {
    let app = spawn_app().await;
    let [(_, t, mut c), (_, _, mut bystander)] =
        app.users_in_general(["fuzzer", "bystander"]).await;
    let mut rng = StdRng::seed_from_u64(42);
    let mut answered = 0;
    for _ in 0..200 {
        let frame = random_frame(&mut rng);
        c.send_text(&frame).await;
        // Read the answers; a valid `leave_room` without a room closes with 1000.
        loop {
            use futures_util::StreamExt;
            match tokio::time::timeout(std::time::Duration::from_millis(30), c.stream.next()).await
            {
                Ok(Some(Ok(Message::Text(_)))) => answered += 1,
                Ok(Some(Ok(Message::Close(f)))) => {
                    assert_eq!(f.map(|f| u16::from(f.code)), Some(1000), "after {frame:?}");
                    c = app.ws_in_general(&t).await;
                    break;
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("after {frame:?}: {other:?}"),
                Err(_) => break,
            }
        }
    }
    assert!(
        answered >= 180,
        "almost every frame is answered: {answered}"
    );
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    c.send_text(&deep).await; // over the frame limit: closes with 1009
    assert_eq!(c.recv_close().await, Some(1009));
    // Everyone else is fine.
    let mut c = app.ws_in_general(&t).await;
    c.send_json(json!({"type": "message", "content": "after the storm"}))
        .await;
    assert_eq!(
        bystander.recv_type("message").await["data"]["content"],
        "after the storm"
    );
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let app = spawn_app().await;
    let (_, _, mut c) = app.user_in_general("bytes").await;
    // A text frame whose payload is not UTF-8, which tungstenite would refuse to build: send raw frame bytes.
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe, 0xfd],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    c.stream.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(c.recv_close().await, Some(1007));
}

#[tokio::test]
async fn a_fragmented_message_past_the_limit_closes_with_1009() {
    let app = spawn_app().await;
    let (_, _, mut c) = app.user_in_general("frag").await;
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let chunk = vec![b'a'; 1500];
    let mut send = async |data, fin| {
        let frame = Frame::message(chunk.clone(), OpCode::Data(data), fin);
        c.stream.send(Message::Frame(frame)).await.unwrap();
    };
    send(Data::Text, false).await;
    for _ in 0..3 {
        send(Data::Continue, false).await;
    }
    send(Data::Continue, true).await;
    assert_eq!(c.recv_close().await, Some(1009));
}
