//! The incoming half of an upgraded socket: bytes → WebSocket frames (actix-http's
//! RFC 6455 parser: masking, lengths, control frames, the size cap) → whole
//! messages (fragments joined, under the same cap, text checked to be UTF-8).
//!
//! Memory: nothing is buffered while the client is quiet. A read lands in a
//! scratch array on the stack and only what is left of an unfinished frame
//! is kept on the heap, so an idle connection holds no read buffer.

use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use shared::close_codes::{self, Close};
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::Decoder;

/// One whole client message.
#[derive(Debug)]
pub enum Incoming {
    Text(ByteString),
    Binary,
    Ping(Bytes),
    Pong,
    Close,
}

/// A fragmented message being put together.
enum Partial {
    None,
    Text(BytesMut),
    /// Binary messages are refused whole; only their size is tracked.
    Binary(usize),
}

pub struct FrameReader {
    io: OwnedReadHalf,
    codec: Codec,
    buf: BytesMut,
    partial: Partial,
    max_message: usize,
}

/// Bytes taken from the socket per read; more than one full-size frame
/// rarely arrives at once.
const SCRATCH: usize = 4096;

impl FrameReader {
    /// `already_read`: bytes the HTTP parser read past the handshake (a client
    /// that sent frames before it saw the 101).
    pub fn new(io: OwnedReadHalf, already_read: BytesMut, max_message: usize) -> Self {
        FrameReader {
            io,
            codec: Codec::new().max_size(max_message),
            buf: already_read,
            partial: Partial::None,
            max_message,
        }
    }

    /// The next whole message. `Err` carries the close code to end the
    /// connection with: a protocol error, or `NORMAL` when the peer went away.
    /// Cancel-safe: the only `.await` is waiting for the socket to be readable.
    pub async fn next(&mut self) -> Result<Incoming, Close> {
        loop {
            if let Some(message) = self.decode()? {
                return Ok(message);
            }
            if self.buf.is_empty() {
                // Give the allocation back while the client is quiet.
                self.buf = BytesMut::new();
            }
            self.io.readable().await.map_err(|_| close_codes::NORMAL)?;
            let mut scratch = [0u8; SCRATCH];
            match self.io.try_read(&mut scratch) {
                Ok(0) => return Err(close_codes::NORMAL),
                Ok(n) => self.buf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(close_codes::NORMAL),
            }
        }
    }

    /// A whole message from the buffered bytes, if there is one.
    fn decode(&mut self) -> Result<Option<Incoming>, Close> {
        loop {
            let Some(frame) = self.codec.decode(&mut self.buf).map_err(protocol_close)? else {
                return Ok(None);
            };
            let message = match frame {
                Frame::Text(bytes) => Some(text(bytes)?),
                Frame::Binary(_) => Some(Incoming::Binary),
                Frame::Ping(bytes) => Some(Incoming::Ping(bytes)),
                Frame::Pong(_) => Some(Incoming::Pong),
                Frame::Close(_) => Some(Incoming::Close),
                Frame::Continuation(item) => self.fragment(item)?,
            };
            if message.is_some() {
                return Ok(message);
            }
        }
    }

    fn fragment(&mut self, item: Item) -> Result<Option<Incoming>, Close> {
        let (bytes, last) = match item {
            Item::FirstText(bytes) => {
                self.partial = Partial::Text(BytesMut::new());
                (bytes, false)
            }
            Item::FirstBinary(bytes) => {
                self.partial = Partial::Binary(0);
                (bytes, false)
            }
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        let size = match &mut self.partial {
            Partial::None => return Err(close_codes::PROTOCOL_ERROR),
            Partial::Text(joined) => {
                joined.extend_from_slice(&bytes);
                joined.len()
            }
            Partial::Binary(size) => {
                *size += bytes.len();
                *size
            }
        };
        if size > self.max_message {
            return Err(close_codes::MESSAGE_TOO_BIG);
        }
        if !last {
            return Ok(None);
        }
        match std::mem::replace(&mut self.partial, Partial::None) {
            Partial::Text(joined) => Ok(Some(text(joined.freeze())?)),
            Partial::Binary(_) => Ok(Some(Incoming::Binary)),
            Partial::None => Err(close_codes::PROTOCOL_ERROR),
        }
    }

    /// Read until the client's close frame or its end of stream (the closing
    /// handshake), discarding anything else; the caller bounds the wait.
    pub async fn await_close(&mut self) {
        while let Ok(message) = self.next().await {
            if matches!(message, Incoming::Close) {
                return;
            }
        }
    }
}

fn text(bytes: Bytes) -> Result<Incoming, Close> {
    ByteString::try_from(bytes)
        .map(Incoming::Text)
        .map_err(|_| close_codes::INVALID_PAYLOAD)
}

/// The close code for a frame the parser refused.
fn protocol_close(e: ProtocolError) -> Close {
    match e {
        ProtocolError::Overflow => close_codes::MESSAGE_TOO_BIG,
        _ => close_codes::PROTOCOL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A client frame: masked, as RFC 6455 requires of clients.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let mask = [0x11, 0x22, 0x33, 0x44];
        let mut out = vec![(fin as u8) << 7 | opcode, 0x80 | payload.len() as u8];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// A reader over a real socket pair, fed `bytes` by the peer.
    async fn reader(bytes: Vec<u8>, max: usize) -> FrameReader {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        peer.write_all(&bytes).await.unwrap();
        // The bytes stay readable after the peer is gone; then the end.
        drop(peer);
        let (read, _) = server.into_split();
        FrameReader::new(read, BytesMut::new(), max)
    }

    #[tokio::test]
    async fn fragments_are_joined_around_control_frames() {
        let mut bytes = frame(false, 0x1, "héllo ".as_bytes());
        bytes.extend(frame(true, 0x9, b"p")); // a ping between fragments
        bytes.extend(frame(true, 0x0, b"world"));
        bytes.extend(frame(true, 0x8, &1000u16.to_be_bytes()));
        let mut r = reader(bytes, 64).await;
        assert!(matches!(r.next().await, Ok(Incoming::Ping(p)) if &p[..] == b"p"));
        assert!(matches!(r.next().await, Ok(Incoming::Text(t)) if t == "héllo world"));
        assert!(matches!(r.next().await, Ok(Incoming::Close)));
        assert_eq!(
            r.next().await.unwrap_err(),
            close_codes::NORMAL,
            "then the end"
        );
    }

    #[tokio::test]
    async fn broken_input_gets_its_close_code() {
        // UTF-8 cut in two across fragments is fine; invalid UTF-8 is 1007.
        let e = "é".as_bytes();
        let mut split = frame(false, 0x1, &e[..1]);
        split.extend(frame(true, 0x0, &e[1..]));
        let mut r = reader(split, 64).await;
        assert!(matches!(r.next().await, Ok(Incoming::Text(t)) if t == "é"));
        let mut r = reader(frame(true, 0x1, &[0xff, 0xfe]), 64).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::INVALID_PAYLOAD);
        // Over the cap: one frame, or fragments that add up.
        let mut r = reader(frame(true, 0x1, &[b'a'; 20]), 16).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::MESSAGE_TOO_BIG);
        let mut parts = frame(false, 0x1, &[b'a'; 10]);
        parts.extend(frame(true, 0x0, &[b'a'; 10]));
        let mut r = reader(parts, 16).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::MESSAGE_TOO_BIG);
        // A continuation with nothing to continue, and an unmasked frame.
        let mut r = reader(frame(true, 0x0, b"x"), 64).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::PROTOCOL_ERROR);
        let mut r = reader(vec![0x81, 0x01, b'x'], 64).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::PROTOCOL_ERROR);
    }
}
