//! The WebSocket test client: [`WsClient`] with halves usable at the same
//! time, and [`FrameReader`], which reads JSON frames (skipping pings and
//! pongs) with bounded waits, so a missing frame fails the test, not hangs it.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{User, WAIT};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client whose halves can be used at the same time (send while reading).
pub struct WsClient {
    pub label: String,
    pub tx: SplitSink<Ws, Message>,
    pub rx: FrameReader,
}

/// The reading half: JSON frames, with pings/pongs skipped.
pub struct FrameReader {
    pub label: String,
    stream: SplitStream<Ws>,
}

impl WsClient {
    pub async fn connect(url: &str, label: &str) -> Result<WsClient, (u16, String)> {
        use tokio_tungstenite::tungstenite::Error;
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url)).await {
            Err(_) => panic!("{label}: connecting to {url} timed out"),
            Ok(Ok((stream, _))) => {
                let (tx, stream) = stream.split();
                Ok(WsClient {
                    label: label.to_owned(),
                    tx,
                    rx: FrameReader {
                        label: label.to_owned(),
                        stream,
                    },
                })
            }
            Ok(Err(Error::Http(resp))) => Err(crate::ws_refusal::refusal(&resp)),
            Ok(Err(e)) => panic!("{label}: connect {url}: {e}"),
        }
    }

    pub async fn send_json(&mut self, v: Value) {
        send_on(&mut self.tx, &self.label, v).await;
    }

    /// `{"type":"message","room_id":room,"content":content,"client_msg_id":cmid}`.
    pub async fn send_message(&mut self, room: i64, content: &str, cmid: &str) {
        self.send_json(
            json!({"type": "message", "room_id": room, "content": content, "client_msg_id": cmid}),
        )
        .await;
    }

    pub async fn recv_json(&mut self) -> Value {
        self.rx.recv_json().await
    }

    pub async fn recv_type(&mut self, ty: &str) -> Value {
        self.rx.recv_type(ty).await
    }

    /// The next `message` frame (other frames skipped) must be `content`
    /// from `from`; that frame.
    pub async fn expect_message_from(&mut self, from: &User, content: &str) -> Value {
        let m = self.recv_type("message").await;
        assert_eq!(
            (m["data"]["content"].as_str(), m["data"]["user_id"].as_i64()),
            (Some(content), Some(from.id)),
            "{}: expected {content:?} from {}, got {m}",
            self.label,
            from.username
        );
        m
    }

    /// Send a close frame and wait (bounded) for the server's: the gateway
    /// answers only after its cleanup (leaving rooms, presence, `user_left`).
    pub async fn close_and_wait(mut self) {
        let _ = self
            .tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let label = self.label.clone();
        let wait = async {
            loop {
                match self.rx.stream.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("{label}: the server did not answer the close in {WAIT:?}"));
    }
}

pub async fn send_on(tx: &mut SplitSink<Ws, Message>, label: &str, v: Value) {
    tx.send(Message::text(v.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{label}: send failed: {e}"));
}

impl FrameReader {
    /// The next JSON frame within `within`: `Err` on timeout, close or error.
    pub async fn next_within(&mut self, within: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(format!("no frame within {within:?}")),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Ok(serde_json::from_str(&t)
                        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {t}", self.label)));
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Close(f)))) => {
                    return Err(format!("connection closed by the server: {f:?}"));
                }
                Ok(Some(Ok(other))) => return Err(format!("unexpected frame {other:?}")),
                Ok(Some(Err(e))) => return Err(format!("read error: {e}")),
                Ok(None) => return Err("connection ended".into()),
            }
        }
    }

    /// The next JSON frame; panics after [`WAIT`] or on close.
    pub async fn recv_json(&mut self) -> Value {
        self.recv_json_within(WAIT).await
    }

    pub async fn recv_json_within(&mut self, within: Duration) -> Value {
        match self.next_within(within).await {
            Ok(v) => v,
            Err(e) => panic!("{}: expected a frame: {e}", self.label),
        }
    }

    /// The next frame that is not about presence (`online_users`,
    /// `user_joined`, `user_left`, `presence_batch`); panics after [`WAIT`].
    pub async fn next_event(&mut self) -> Value {
        loop {
            let v = self.recv_json().await;
            if !crate::presence_frames::is_presence(&v) {
                return v;
            }
        }
    }

    /// Skip frames until one of type `ty`; an `error` frame fails the test.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = match self.next_within(left).await {
                Ok(v) => v,
                Err(e) => panic!("{}: waiting for a {ty} frame: {e}", self.label),
            };
            if v["type"] == ty {
                return v;
            }
            assert_ne!(
                v["type"], "error",
                "{}: unexpected error frame while waiting for {ty}: {v}",
                self.label
            );
        }
    }

    /// Skip frames until the server's close frame; its code (None: no code,
    /// or the connection ended without a close frame).
    pub async fn recv_close(&mut self, within: Duration) -> Option<u16> {
        let label = self.label.clone();
        let wait = async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return None,
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("{label}: no close frame within {within:?}"))
    }

    /// Assert that nothing but control frames arrives for `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        match self.next_within(within).await {
            Err(e) if e.starts_with("no frame") => {}
            Ok(v) => panic!("{}: expected silence, got {v}", self.label),
            Err(e) => panic!("{}: expected silence, got {e}", self.label),
        }
    }
}
