//! A WebSocket client that sends whatever it is told: frames with any
//! header, lengths that lie, floods. Reads only when asked.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawWs {
    pub io: TcpStream,
}

/// A client frame (masked with a zero key, so the payload reads as sent).
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(fin as u8) << 7 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

impl RawWs {
    /// Upgrade `GET /ws?{query}` with extra header lines; panics unless 101.
    pub async fn connect(addr: &str, query: &str, headers: &str) -> RawWs {
        let (status, ws) = Self::handshake(addr, query, headers).await;
        assert_eq!(status, 101);
        ws
    }

    /// The status an upgrade gets (the connection is dropped).
    pub async fn status(addr: &str, query: &str, headers: &str) -> u16 {
        Self::handshake(addr, query, headers).await.0
    }

    async fn handshake(addr: &str, query: &str, headers: &str) -> (u16, RawWs) {
        let mut io = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /ws?{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
        );
        io.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            assert_eq!(
                io.read(&mut b).await.unwrap(),
                1,
                "closed during the handshake"
            );
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, RawWs { io })
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await
    }

    /// Read frames until a close frame (its code) or the end of the
    /// stream (`None`), for at most `within`; `Err` when it timed out.
    pub async fn close_code(&mut self, within: Duration) -> Result<Option<u16>, ()> {
        tokio::time::timeout(within, async {
            loop {
                let mut head = [0u8; 2];
                if self.io.read_exact(&mut head).await.is_err() {
                    return None;
                }
                let len = match head[1] & 0x7F {
                    126 => self.io.read_u16().await.ok()? as usize,
                    127 => self.io.read_u64().await.ok()? as usize,
                    n => n as usize,
                };
                let mut payload = vec![0; len];
                self.io.read_exact(&mut payload).await.ok()?;
                if head[0] & 0x0F == 0x8 {
                    return Some(
                        payload
                            .get(..2)
                            .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])),
                    );
                }
            }
        })
        .await
        .map_err(|_| ())
    }

    /// After the close frame: how long until the server ends the TCP
    /// connection (EOF or reset), at most `within`.
    pub async fn eof_within(&mut self, within: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        let mut buf = [0u8; 1024];
        tokio::time::timeout(within, async {
            loop {
                match self.io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .ok()
        .map(|_| started.elapsed())
    }
}
