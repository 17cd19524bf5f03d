//! A client that never reads must not slow the room down or grow the node's memory.

use crate::helpers::{WsClient, spawn_with};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Resident memory of this (test) process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// A connection with a tiny receive buffer, so that not reading fills up fast.
async fn stalled_client(port: u16, token: &str) -> WsClient {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws?token={token}");
    let (stream, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
    WsClient { stream }
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_the_others_get_everything() {
    let app = spawn_with(|s| s.limits.outbound_queue = 16).await;
    let (_, sender) = app.register("sender").await;
    let (_, reader) = app.register("reader").await;
    let mut stalled = Vec::new();
    for i in 0..5 {
        let (_, t) = app.register(&format!("stalled{i}")).await;
        stalled.push(stalled_client(app.port, &t).await);
    }
    let mut s = app.ws_in_general(&sender).await;
    let mut r = app.ws_in_general(&reader).await;
    let rss_before = rss_kib();

    // 1,500 messages of ~1.9 KB, each sent once the previous one reached both
    // the sender and the reader; the stalled clients read nothing.
    const N: usize = 1500;
    let body = "y".repeat(1900);
    for i in 0..N {
        s.send_json(json!({"type": "message", "content": format!("{i} {body}")}))
            .await;
        for c in [&mut s, &mut r] {
            let m = c.recv_type("message").await;
            assert!(
                m["data"]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{i} ")),
                "every message, in order"
            );
        }
    }
    let rss_after = rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB while clients were stalled"
    );
    // Every stalled client was told it is too slow (4008), once it reads again.
    for mut c in stalled {
        let code = loop {
            match tokio::time::timeout(
                crate::helpers::WAIT,
                futures_util::StreamExt::next(&mut c.stream),
            )
            .await
            {
                Ok(Some(Ok(Message::Close(f)))) => break f.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => break None,
                Err(_) => panic!("stalled client was never closed"),
            }
        };
        assert_eq!(code, Some(4008), "slow consumer close code");
    }
}

#[tokio::test]
async fn a_hundred_stalled_clients_keep_memory_bounded_and_the_room_fast() {
    let app = spawn_with(|s| {
        s.limits.outbound_queue = 16;
        s.limits.max_connections_per_user = 200;
    })
    .await;
    let (_, sender) = app.register("sender").await;
    let (_, reader) = app.register("reader").await;
    let (_, stalled_user) = app.register("stalled").await;
    let mut stalled = Vec::new();
    for _ in 0..100 {
        stalled.push(stalled_client(app.port, &stalled_user).await);
    }
    let mut s = app.ws_in_general(&sender).await;
    let mut r = app.ws_in_general(&reader).await;
    let rss_before = rss_kib();
    let body = "z".repeat(1900);
    let mut slowest = std::time::Duration::ZERO;
    // Enough to fill what the kernel buffers for each stalled socket (~3 MB).
    for i in 0..1500 {
        let sent = std::time::Instant::now();
        s.send_json(json!({"type": "message", "content": format!("{i} {body}")}))
            .await;
        s.recv_type("message").await;
        let m = r.recv_type("message").await;
        slowest = slowest.max(sent.elapsed());
        assert!(
            m["data"]["content"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{i} "))
        );
    }
    let rss_after = rss_kib();
    eprintln!(
        "100 stalled clients: RSS {rss_before} -> {rss_after} KiB, slowest round trip {slowest:?}"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB with 100 stalled clients"
    );
    assert!(
        slowest < std::time::Duration::from_secs(2),
        "the room kept moving: slowest round trip {slowest:?}"
    );
    let metrics = app.metrics().await;
    let slow_line = metrics
        .lines()
        .find(|l| l.starts_with("chat_gateway_slow_consumer_disconnects_total "))
        .unwrap();
    let slow: f64 = slow_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        slow >= 100.0,
        "every stalled client was dropped as a slow consumer: {slow_line}"
    );
    drop(stalled);
}
