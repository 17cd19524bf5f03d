//! Plain HTTP: a kept-alive connection whose next request head never ends.

use crate::node::Node;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Finding 4: only the first request on a connection had a deadline. After
/// one fast request, the next head could trickle in a byte at a time
/// forever: 1,900 such connections were held for 45 s, and at the fd limit
/// the node stops accepting. Every head now has 5 s from its first byte.
#[tokio::test]
async fn a_trickled_second_request_head_is_cut_off() {
    let mut node = Node::start(&[]).await;
    let before = node.rss_kib();
    let watch = node.watch();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let mut io = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
        io.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = io.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "the first request is served"
        );
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            // A byte a second, for at most 12 s, until the node hangs up.
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n".iter().take(12) {
                if io.write_all(&[*byte]).await.is_err() {
                    return Some(started.elapsed());
                }
                match tokio::time::timeout(Duration::from_secs(1), io.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                    _ => {}
                }
            }
            None
        }));
    }
    let mut held = 0;
    let mut slowest = Duration::ZERO;
    for t in tasks {
        match t.await.unwrap() {
            Some(t) => slowest = slowest.max(t),
            None => held += 1,
        }
    }
    assert_eq!(
        held, 0,
        "connections still open after 12 s of a trickled head"
    );
    assert!(
        slowest < Duration::from_secs(9),
        "cut off after {slowest:?} (deadline 5 s)"
    );
    assert!(
        node.metric("chat_gateway_limited_total", "limit=\"request_head\"")
            .await
            >= 200.0
    );
    node.assert_served(watch, before, 32, "trickled heads")
        .await;
}
