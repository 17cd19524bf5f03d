//! permessage-deflate (RFC 7692) through `/ws`, with a raw client that
//! compresses and inflates with flate2 directly (tungstenite has no
//! compression): negotiated when offered and on, refused when off or when
//! the offer is unacceptable; a broadcast compressed once for every member
//! that negotiated it, and plain for the others; short frames plain;
//! compressed client messages inflated; a deflate bomb closed with 1009
//! while the room stays served.

use crate::helpers::{WsClient, spawn_app, spawn_with};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);
const ACCEPTED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
/// What browsers offer.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// A WebSocket client on a bare socket.
struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The 101's `Sec-WebSocket-Extensions`, if any.
    extensions: Option<String>,
}

/// One server frame: its opcode, RSV1, and its payload as sent.
struct Frame {
    opcode: u8,
    rsv1: bool,
    payload: Vec<u8>,
}

impl RawClient {
    async fn open(port: u16, token: &str, offer: Option<&str>) -> RawClient {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let offer = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("the 101 in time")
                .unwrap();
            assert!(n > 0, "closed before the 101");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        buf.drain(..head_end);
        RawClient {
            stream,
            buf,
            extensions,
        }
    }

    async fn fill(&mut self, want: usize) {
        while self.buf.len() < want {
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("a frame in time")
                .unwrap();
            assert!(n > 0, "closed by the server");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next frame (the server never masks nor fragments).
    async fn frame(&mut self) -> Frame {
        self.fill(2).await;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        assert_eq!(b0 & 0x80, 0x80, "FIN");
        let (len, at) = match b1 & 0x7F {
            126 => {
                self.fill(4).await;
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                self.fill(10).await;
                let len = u64::from_be_bytes(self.buf[2..10].try_into().unwrap());
                (len as usize, 10)
            }
            n => (n as usize, 2),
        };
        self.fill(at + len).await;
        let payload = self.buf[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Frame {
            opcode: b0 & 0x0F,
            rsv1: b0 & 0x40 != 0,
            payload,
        }
    }

    /// The next text frame's JSON (pings skipped), and whether it came compressed.
    async fn json(&mut self) -> (Value, bool) {
        loop {
            let f = self.frame().await;
            match f.opcode {
                0x9 | 0xA => continue,
                0x1 => {
                    let text = if f.rsv1 {
                        inflate(&f.payload)
                    } else {
                        f.payload
                    };
                    return (serde_json::from_slice(&text).unwrap(), f.rsv1);
                }
                other => panic!("expected a text frame, got opcode {other}"),
            }
        }
    }

    async fn json_of_type(&mut self, ty: &str) -> (Value, bool) {
        loop {
            let (v, compressed) = self.json().await;
            if v["type"] == ty {
                return (v, compressed);
            }
        }
    }

    /// The close frame's code (frames before it skipped).
    async fn close_code(&mut self) -> u16 {
        loop {
            let f = self.frame().await;
            if f.opcode == 0x8 {
                return u16::from_be_bytes([f.payload[0], f.payload[1]]);
            }
        }
    }

    /// Send a masked text frame, with RSV1 if `rsv1`.
    async fn send(&mut self, payload: &[u8], rsv1: bool) {
        let mask = [0x5a, 0x17, 0xc3, 0x01];
        let mut out = vec![0x81 | if rsv1 { 0x40 } else { 0 }];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out).await.unwrap();
    }
}

/// A client's compression of one message (zlib's, through flate2), the
/// trailing `00 00 ff ff` removed.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    c.compress_vec(payload, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    assert_eq!(d.total_in() as usize, input.len(), "inflated whole");
    out
}

fn compressed_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("chat_gateway_ws_messages_compressed_total "))
        .expect("the metric")
        .trim()
        .parse()
        .unwrap()
}

fn long_content() -> String {
    "Compression pays for the words a chat repeats. "
        .repeat(12)
        .trim_end()
        .to_owned()
}

#[tokio::test]
async fn a_broadcast_is_compressed_once_for_every_member_that_negotiated_it() {
    let app = spawn_app().await;
    let (_, _, mut sender) = app.user_in_general("alice").await;
    let mut compressing = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let (_, token) = app.register(name).await;
        let mut c = RawClient::open(app.port, &token, Some(BROWSER_OFFER)).await;
        assert_eq!(c.extensions.as_deref(), Some(ACCEPTED));
        c.json_of_type("online_users").await;
        compressing.push(c);
    }
    let (_, erin) = app.register("erin").await;
    let mut plain = RawClient::open(app.port, &erin, None).await;
    assert_eq!(plain.extensions, None, "not offered, not answered");
    plain.json_of_type("online_users").await;
    // Everyone's presence frames are out (each client saw erin arrive).
    for c in &mut compressing {
        while c.json_of_type("user_joined").await.0["data"]["user"]["username"] != "erin" {}
    }
    while sender.recv_type("user_joined").await["data"]["user"]["username"] != "erin" {}

    let before = compressed_total(&app.metrics().await);
    let echo = sender.say(&long_content()).await;
    let (as_sent, compressed) = plain.json_of_type("message").await;
    assert!(!compressed, "a client that did not negotiate gets it plain");
    assert_eq!(as_sent, echo);
    for c in &mut compressing {
        let (got, compressed) = c.json_of_type("message").await;
        assert!(compressed, "RSV1 set on a long frame");
        assert_eq!(got, as_sent, "inflates to the frame the others got");
    }
    let after = compressed_total(&app.metrics().await);
    assert_eq!(after - before, 1, "compressed once for three members");
    // Short frames go plain, also to those who negotiated.
    sender
        .send_json(json!({"type": "message", "content": "hi"}))
        .await;
    for c in &mut compressing {
        let (got, compressed) = c.json_of_type("message").await;
        assert_eq!(got["data"]["content"], "hi");
        assert!(!compressed, "under the threshold: plain");
    }
    assert!(
        app.metrics()
            .await
            .contains("chat_gateway_ws_compressed_connections_total 3")
    );
}

#[tokio::test]
async fn compression_is_refused_when_off_or_when_the_offer_is_unacceptable() {
    let off = spawn_with(|s| s.ws.compression = false).await;
    let (_, alice) = off.register("alice").await;
    let mut c = RawClient::open(off.port, &alice, Some(BROWSER_OFFER)).await;
    assert_eq!(c.extensions, None, "CHAT__WS__COMPRESSION=false");
    c.json_of_type("online_users").await;
    let mut sender = off.ws_in_general(&alice).await;
    sender.say(&long_content()).await;
    let (m, compressed) = c.json_of_type("message").await;
    assert!(!compressed);
    assert_eq!(m["data"]["content"], long_content());

    let app = spawn_app().await;
    let (_, bob) = app.register("bob").await;
    // An unknown parameter, or a window zlib cannot make: declined.
    for offer in [
        "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window_bits=8",
        "x-webkit-deflate-frame",
    ] {
        let c = RawClient::open(app.port, &bob, Some(offer)).await;
        assert_eq!(c.extensions, None, "{offer}");
    }
    // A smaller window is honoured: what it gets inflates in that window.
    let mut small = RawClient::open(
        app.port,
        &bob,
        Some("permessage-deflate; server_max_window_bits=9, permessage-deflate"),
    )
    .await;
    assert_eq!(
        small.extensions.as_deref(),
        Some(format!("{ACCEPTED}; server_max_window_bits=9").as_str())
    );
    small.json_of_type("online_users").await;
    let mut sender = app.ws_in_general(&bob).await;
    sender.say(&long_content()).await;
    let (m, compressed) = small.json_of_type("message").await;
    assert!(compressed);
    assert_eq!(m["data"]["content"], long_content());
}

#[tokio::test]
async fn compressed_client_messages_are_inflated_and_a_deflate_bomb_gets_1009() {
    let app = spawn_app().await;
    let (_, alice) = app.register("alice").await;
    let (_, mallory) = app.register("mallory").await;
    let mut alice_ws: WsClient = app.ws_in_general(&alice).await;
    let mut c = RawClient::open(app.port, &mallory, Some(BROWSER_OFFER)).await;
    c.json_of_type("online_users").await;

    let message = json!({"type": "message", "content": long_content()}).to_string();
    c.send(&deflate(message.as_bytes()), true).await;
    let (echo, _) = c.json_of_type("message").await;
    assert_eq!(echo["data"]["content"], long_content());
    assert_eq!(
        alice_ws.recv_type("message").await["data"]["content"],
        long_content()
    );

    // A megabyte of spaces is ~1 KiB compressed: inflation stops at the
    // frame limit (4096 bytes, counted inflated) and the client is closed.
    let bomb = deflate(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 4096, "{} bytes on the wire", bomb.len());
    c.send(&bomb, true).await;
    assert_eq!(c.close_code().await, 1009);
    // The room is still served.
    let started = std::time::Instant::now();
    assert_eq!(
        alice_ws.say("still here").await["data"]["content"],
        "still here"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // RSV1 without compression negotiated: a protocol error.
    let mut plain = RawClient::open(app.port, &mallory, None).await;
    plain.json_of_type("online_users").await;
    plain.send(&deflate(message.as_bytes()), true).await;
    assert_eq!(plain.close_code().await, 1002);
}
