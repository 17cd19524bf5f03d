//! A WebSocket client on a bare socket that speaks permessage-deflate
//! (RFC 7692) itself, compressing and inflating with flate2 (tungstenite
//! has no compression): it shows what the server negotiated, whether each
//! frame came compressed (RSV1), and can send compressed or hostile frames.
//! Shared by the api and cluster test binaries.

#![allow(dead_code)]

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);
/// The server's answer to an acceptable offer.
pub const ACCEPTED: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
/// What browsers offer.
pub const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// A WebSocket client on a bare socket.
pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The 101's `Sec-WebSocket-Extensions`, if any.
    pub extensions: Option<String>,
}

/// One server frame: its opcode, RSV1, and its payload as sent.
pub struct Frame {
    pub opcode: u8,
    pub rsv1: bool,
    pub payload: Vec<u8>,
}

impl RawClient {
    pub async fn open(port: u16, token: &str, offer: Option<&str>) -> RawClient {
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

    pub async fn fill(&mut self, want: usize) {
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
    pub async fn frame(&mut self) -> Frame {
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
    pub async fn json(&mut self) -> (Value, bool) {
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

    pub async fn json_of_type(&mut self, ty: &str) -> (Value, bool) {
        loop {
            let (v, compressed) = self.json().await;
            if v["type"] == ty {
                return (v, compressed);
            }
        }
    }

    /// The close frame's code (frames before it skipped).
    pub async fn close_code(&mut self) -> u16 {
        loop {
            let f = self.frame().await;
            if f.opcode == 0x8 {
                return u16::from_be_bytes([f.payload[0], f.payload[1]]);
            }
        }
    }

    /// Send a masked text frame, with RSV1 if `rsv1`.
    pub async fn send(&mut self, payload: &[u8], rsv1: bool) {
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
pub fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    c.compress_vec(payload, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

pub fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    assert_eq!(d.total_in() as usize, input.len(), "inflated whole");
    out
}
