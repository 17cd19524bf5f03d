//! The frame layer: a length that lies, floods of frames that carry
//! nothing, a broken close, and input that would make actix log at ERROR.

use crate::node::Node;
use crate::raw_ws::{RawWs, frame};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Keep writing `bytes` for `secs` (each write given up after 100 ms: a
/// server that stopped reading must not stop the clock).
async fn flood(ws: &mut RawWs, bytes: &[u8], secs: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut sent = 0;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), ws.send(bytes)).await {
            Ok(Ok(())) => sent += bytes.len(),
            Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    sent
}

/// Finding 1: a text frame declaring 2^40 bytes, then data for 3 s. The
/// unprotected node buffered all of it (RSS 191 MiB → 1.2 GiB in 3 s) and
/// never answered. Now: 1009 at the header, nothing buffered.
#[tokio::test]
async fn a_declared_length_of_a_terabyte_is_refused_at_its_header() {
    let mut node = Node::start(&[]).await;
    let before = node.rss_kib();
    let watch = node.watch();
    let mut ws = RawWs::connect(&node.addr(), &format!("token={}", node.token(1)), "").await;
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    ws.send(&header).await.unwrap();
    let sent = flood(&mut ws, &vec![b'a'; 64 * 1024], 3).await;
    assert_eq!(
        ws.close_code(Duration::from_secs(2)).await,
        Ok(Some(1009)),
        "1009 (message too big) after {sent} bytes"
    );
    node.assert_served(watch, before, 16, "oversized header")
        .await;
}

/// Finding 2: floods of frames that carry nothing (unsolicited pongs; empty
/// non-final continuations) from 4 connections pinned both cores and timed
/// `/healthz` out. Now every frame is paid for from the connection's read
/// budget: past it the socket is read no faster.
#[tokio::test]
async fn floods_of_empty_frames_from_four_connections_leave_the_node_serving() {
    let mut node = Node::start(&[]).await;
    let before = node.rss_kib();
    let watch = node.watch();
    let pongs: Vec<u8> = (0..10_000).flat_map(|_| frame(true, 0xA, b"")).collect();
    let continuations = frame(false, 0x1, b"");
    let empty: Vec<u8> = (0..10_000).flat_map(|_| frame(false, 0x0, b"")).collect();
    let mut attackers = Vec::new();
    for i in 0..4 {
        let mut ws =
            RawWs::connect(&node.addr(), &format!("token={}", node.token(10 + i)), "").await;
        let payload = if i % 2 == 0 {
            pongs.clone()
        } else {
            ws.send(&continuations).await.unwrap();
            empty.clone()
        };
        attackers.push(tokio::spawn(async move {
            let sent = flood(&mut ws, &payload, 6).await;
            (sent, ws)
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connect = node.connect_time(500).await;
    assert!(
        connect <= crate::node::CONNECT_MAX,
        "a WebSocket during the flood: {connect:?}"
    );
    let mut total = 0;
    for a in attackers {
        let (sent, _ws) = a.await.unwrap();
        total += sent;
    }
    assert!(
        node.metric("chat_gateway_limited_total", "limit=\"read_budget\"")
            .await
            > 0.0,
        "the read budget paused the flooders"
    );
    println!("flooders sent {} KiB", total / 1024);
    node.assert_served(watch, before, 64, "empty-frame floods")
        .await;
}

/// Finding 8: after an invalid close frame (code 999) the node sent its
/// 1002 and then kept TCP open for ~1 s waiting for an answer. A protocol
/// failure ends the TCP connection at once (RFC 6455 §7.1.7).
#[tokio::test]
async fn an_invalid_close_is_answered_1002_and_the_connection_ends_at_once() {
    let node = Node::start(&[]).await;
    let mut ws = RawWs::connect(&node.addr(), &format!("token={}", node.token(1)), "").await;
    ws.send(&frame(true, 0x8, &999u16.to_be_bytes()))
        .await
        .unwrap();
    assert_eq!(ws.close_code(Duration::from_secs(2)).await, Ok(Some(1002)));
    let eof = ws.eof_within(Duration::from_secs(3)).await;
    assert!(
        eof.is_some_and(|t| t < Duration::from_millis(400)),
        "TCP closed {eof:?} after the close frame (lingering is for clean closes only)"
    );
}

/// Finding 9: fragmented pings and pongs made actix-http log at ERROR, and
/// so can malformed and oversized request heads: a client could fill the
/// error log. Nothing a client sends may log at ERROR.
#[tokio::test]
async fn nothing_a_client_sends_logs_at_error() {
    let node = Node::start(&[]).await;
    for opcode in [0x9, 0xA] {
        let mut ws = RawWs::connect(&node.addr(), &format!("token={}", node.token(1)), "").await;
        ws.send(&frame(false, opcode, b"x")).await.unwrap();
        assert_eq!(ws.close_code(Duration::from_secs(2)).await, Ok(Some(1002)));
    }
    let garbage: [&[u8]; 3] = [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        &[b'a'; 40 * 1024],
    ];
    for bytes in garbage {
        let mut io = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
        let _ = io.write_all(bytes).await;
        let _ = io.write_all(b"\r\n\r\n").await;
        let mut buf = [0u8; 512];
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(&mut io, &mut buf),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = node.log();
    let errors: Vec<_> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "ERROR lines from client input:\n{}",
        errors.join("\n")
    );
}
