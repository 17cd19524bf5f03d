//! The outgoing half of an upgraded socket: WebSocket frames (RFC 6455 §5.2,
//! server side, never masked) encoded straight into one buffer, written with
//! as few system calls as possible.
//!
//! Why not actix-ws: it hands every frame through a channel to the HTTP
//! dispatcher, which keeps two 8 KiB buffers per connection for its whole
//! life, and writes per wake-up of that dispatcher. Here the session's writer
//! appends every frame it has queued and flushes once; the buffer is given
//! back as soon as it is empty, so an idle connection holds no buffer at all.
//!
//! With permessage-deflate negotiated, data frames of a compressed message
//! carry RSV1 (RFC 7692 §6): a broadcast's shared compressed copy
//! ([`TextFrame::deflated`]), or, for a message sent once, its own.

use crate::conn::text_frame::TextFrame;
use crate::deflate::{self, Deflate};
use bytes::{BufMut, BytesMut};
use shared::close_codes::Close;
use std::io;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

/// Opcodes of the frames the gateway sends.
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
/// "This message is compressed", on its first frame.
const RSV1: u8 = 0x40;
/// A control frame's payload is at most 125 bytes (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;
/// The buffer's first allocation after a write: room for a turn's worth of
/// broadcasts (a dozen chat frames), so that it is not grown by doubling
/// from the first frame's size on every wake-up (3 % of a 500-member
/// room's fan-out went to that). Given back after the write, as before.
const FIRST_ALLOCATION: usize = 4096;

pub struct FrameWriter {
    io: OwnedWriteHalf,
    /// Encoded frames not yet (fully) written. After a write cut short by a
    /// timeout it keeps the unwritten rest, so a later close frame still
    /// starts on a frame boundary.
    buf: BytesMut,
    /// permessage-deflate, when the client negotiated it.
    deflate: Option<Deflate>,
}

impl FrameWriter {
    pub fn new(io: OwnedWriteHalf, deflate: Option<Deflate>) -> Self {
        FrameWriter {
            io,
            buf: BytesMut::new(),
            deflate,
        }
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Append a queued frame: compressed (its shared copy) if this
    /// connection negotiated compression and the frame is worth it.
    pub fn shared_text(&mut self, frame: &TextFrame) {
        match self
            .deflate
            .and_then(|d| frame.deflated(d.server_window_bits))
        {
            Some(deflated) => self.frame(TEXT | RSV1, &deflated),
            None => self.frame(TEXT, frame.as_str().as_bytes()),
        }
    }

    /// Append a text message sent once (the payload is UTF-8 already),
    /// compressed for this connection alone when it negotiated compression.
    pub fn text(&mut self, payload: &[u8]) {
        self.data(TEXT, payload);
    }

    /// Append a binary message (the gateway itself sends none; the
    /// conformance echo endpoint does), compressed like [`Self::text`].
    pub fn binary(&mut self, payload: &[u8]) {
        self.data(BINARY, payload);
    }

    fn data(&mut self, opcode: u8, payload: &[u8]) {
        match self
            .deflate
            .and_then(|d| deflate::compress(payload, d.server_window_bits))
        {
            Some(deflated) => self.frame(opcode | RSV1, &deflated),
            None => self.frame(opcode, payload),
        }
    }

    pub fn ping(&mut self) {
        self.frame(PING, b"");
    }

    /// Answer a client's ping with its payload (cut to what a control frame may carry).
    pub fn pong(&mut self, payload: &[u8]) {
        self.frame(PONG, &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)]);
    }

    /// Append the close frame: the code and its short reason.
    pub fn close(&mut self, close: Close) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&close.code.to_be_bytes());
        let reason = close.reason.as_bytes();
        let n = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
        payload[2..2 + n].copy_from_slice(&reason[..n]);
        self.frame(CLOSE, &payload[..2 + n]);
    }

    /// `head`: the opcode, and RSV1 for a compressed message.
    fn frame(&mut self, head: u8, payload: &[u8]) {
        let len = payload.len();
        if self.buf.capacity() == 0 {
            self.buf.reserve(FIRST_ALLOCATION.max(len + 10));
        } else {
            self.buf.reserve(len + 10);
        }
        self.buf.put_u8(0x80 | head); // FIN: the gateway never fragments
        match len {
            0..=125 => self.buf.put_u8(len as u8),
            126..=0xFFFF => {
                self.buf.put_u8(126);
                self.buf.put_u16(len as u16);
            }
            _ => {
                self.buf.put_u8(127);
                self.buf.put_u64(len as u64);
            }
        }
        self.buf.extend_from_slice(payload);
    }

    /// Write everything appended so far. Cancel-safe: what was written is
    /// gone from the buffer, the rest stays. The emptied buffer is released.
    pub async fn flush(&mut self) -> io::Result<()> {
        let queued = self.buf.len();
        let written = self.io.write_all_buf(&mut self.buf).await;
        crate::metrics::metrics()
            .ws_sent_bytes
            .inc_by((queued - self.buf.len()) as u64);
        written?;
        self.buf = BytesMut::new();
        Ok(())
    }

    /// Half-close: no more frames from this side (TCP FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encode through a real socket pair and read the bytes back.
    async fn encoded(fill: impl FnOnce(&mut FrameWriter)) -> Vec<u8> {
        encoded_with(None, fill).await
    }

    async fn encoded_with(
        deflate: Option<Deflate>,
        fill: impl FnOnce(&mut FrameWriter),
    ) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_r, w) = accepted.unwrap().0.into_split();
        let mut writer = FrameWriter::new(w, deflate);
        fill(&mut writer);
        writer.flush().await.unwrap();
        assert_eq!(writer.pending(), 0);
        writer.shutdown().await.unwrap();
        let mut out = Vec::new();
        client.unwrap().read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn frames_have_the_rfc_6455_layout() {
        let out = encoded(|w| w.text(b"hi")).await;
        assert_eq!(out, [0x81, 2, b'h', b'i']);

        let long = vec![b'x'; 300];
        let out = encoded(|w| w.text(&long)).await;
        assert_eq!(&out[..4], &[0x81, 126, 0x01, 0x2C]);
        assert_eq!(out.len(), 4 + 300);

        let huge = vec![b'y'; 70_000];
        let out = encoded(|w| w.text(&huge)).await;
        assert_eq!(&out[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(out[2..10].try_into().unwrap()), 70_000);
    }

    #[tokio::test]
    async fn control_frames_and_batching() {
        let out = encoded(|w| {
            w.ping();
            w.pong(&[7u8; 200]); // cut to 125
            w.text(b"a");
            w.close(shared::close_codes::SLOW_CONSUMER);
        })
        .await;
        assert_eq!(&out[..2], &[0x89, 0]);
        assert_eq!(&out[2..4], &[0x8A, 125]);
        assert_eq!(&out[129..132], &[0x81, 1, b'a']);
        let close = &out[132..];
        assert_eq!(close[0], 0x88);
        assert_eq!(close[1] as usize, close.len() - 2);
        let code = u16::from_be_bytes([close[2], close[3]]);
        assert_eq!(code, shared::close_codes::SLOW_CONSUMER.code);
        assert_eq!(
            &close[4..],
            shared::close_codes::SLOW_CONSUMER.reason.as_bytes()
        );
    }

    #[tokio::test]
    async fn compressed_messages_carry_rsv1_and_short_ones_go_plain() {
        let deflate = Some(Deflate {
            server_window_bits: 15,
        });
        let json = format!(
            r#"{{"type":"message","content":"{}"}}"#,
            "hi there ".repeat(60)
        );
        let shared = TextFrame::new(json.clone());
        let out = encoded_with(deflate, |w| {
            w.shared_text(&shared);
            w.text(b"short");
            w.shared_text(&TextFrame::from("tiny"));
        })
        .await;
        assert_eq!(out[0], 0x80 | RSV1 | TEXT, "FIN, RSV1, text");
        let len = out[1] as usize;
        assert!(len < 126 && len < json.len() / 2, "{len}");
        let inflated = deflate::inflate(&out[2..2 + len], 4096).unwrap();
        assert_eq!(inflated, json.as_bytes());
        assert_eq!(&out[2 + len..], b"\x81\x05short\x81\x04tiny");
        // Not negotiated: the same frame goes plain.
        let out = encoded(|w| w.shared_text(&shared)).await;
        assert_eq!(&out[..2], &[0x81, 126]);
        assert_eq!(&out[4..], json.as_bytes());
    }
}
