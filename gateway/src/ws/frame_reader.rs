//! The incoming half of an upgraded socket: bytes → WebSocket frames (actix-http's
//! RFC 6455 parser: masking, lengths, control frames, close payloads) → whole
//! messages (fragments joined, under the size cap, text checked to be UTF-8).
//!
//! What a client can make it spend is bounded:
//! - memory: each frame's header is checked before its payload is read: a
//!   declared length over the cap (or a fragment that would take the message
//!   over it) is refused with 1009 at once, and a read never takes more than
//!   the frame being assembled still needs, so the buffer holds at most the
//!   cap plus one frame header. A fragmented message holds at most the cap;
//! - CPU: every frame and every byte is paid for from the connection's
//!   [`ReadBudget`]; past it the socket is not read until the budget refills
//!   (TCP pushes back on the client). And the reader gives its worker back
//!   every [`YIELD_EVERY`] steps, so a client with a full socket cannot keep
//!   the other connections of its thread (or `/healthz`) waiting;
//! - inflation (permessage-deflate, when negotiated): a compressed message
//!   is inflated to at most the same cap, counted after inflation, so a
//!   deflate bomb gets 1009 having cost at most the cap;
//! - the log: a fragmented control frame is refused here (1002) before
//!   actix-http's parser would log it at ERROR; nothing a client sends logs
//!   above DEBUG.
//!
//! Memory while idle: nothing is buffered while the client is quiet. A read
//! lands in a scratch array on the stack and only what is left of an
//! unfinished frame is kept on the heap.

use super::read_budget::ReadBudget;
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
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    Close,
}

/// A fragmented message being put together.
enum Partial {
    None,
    Text(BytesMut),
    Binary(BytesMut),
}

impl Partial {
    fn len(&self) -> usize {
        match self {
            Partial::None => 0,
            Partial::Text(b) | Partial::Binary(b) => b.len(),
        }
    }
}

pub struct FrameReader {
    io: OwnedReadHalf,
    codec: Codec,
    buf: BytesMut,
    partial: Partial,
    max_message: usize,
    budget: ReadBudget,
    /// Frames decoded and reads made since the reader last gave its worker back.
    steps: u32,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    inflate: bool,
    /// The frame at the head of `buf` had RSV1 (cleared there, for the parser).
    head_compressed: bool,
    /// The fragmented message being put together is compressed.
    partial_compressed: bool,
}

/// The bit of a message's first frame that says it is compressed (RFC 7692 §6).
const RSV1: u8 = 0x40;

/// Bytes taken from the socket per read, at most.
const SCRATCH: usize = 4096;
/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;
/// Give the worker back after this many frames or reads in a row.
const YIELD_EVERY: u32 = 64;

/// What one step of decoding gave.
enum Step {
    Message(Incoming),
    /// A frame that completes nothing yet (a fragment).
    Fragment,
    /// The buffer holds no whole frame.
    NeedBytes,
}

impl FrameReader {
    /// `already_read`: bytes the HTTP parser read past the handshake (a client
    /// that sent frames before it saw the 101). `budget`: how fast it may send.
    /// `inflate`: permessage-deflate was negotiated.
    pub fn new(
        io: OwnedReadHalf,
        already_read: BytesMut,
        max_message: usize,
        budget: ReadBudget,
        inflate: bool,
    ) -> Self {
        FrameReader {
            io,
            codec: Codec::new().max_size(max_message),
            buf: already_read,
            partial: Partial::None,
            max_message,
            budget,
            steps: 0,
            inflate,
            head_compressed: false,
            partial_compressed: false,
        }
    }

    /// The next whole message. `Err` carries the close code to end the
    /// connection with: a protocol error, or `NORMAL` when the peer went away.
    /// Cancel-safe: at each `.await` (the budget's pause, the worker handed
    /// back, the socket's readiness) no frame is held outside `self`.
    pub async fn next(&mut self) -> Result<Incoming, Close> {
        loop {
            if let Some(at) = self.budget.resume_at() {
                crate::limits::Limit::ReadBudget.hit();
                // Boxed: a timer is large, and this future is held by every
                // connection for its whole life; few ever pause.
                Box::pin(tokio::time::sleep_until(at)).await;
            }
            self.steps += 1;
            if self.steps >= YIELD_EVERY {
                self.steps = 0;
                tokio::task::yield_now().await;
            }
            match self.decode()? {
                Step::Message(message) => return Ok(message),
                Step::Fragment => continue,
                Step::NeedBytes => self.read().await?,
            }
        }
    }

    /// Read what the frame being assembled still needs (at most [`SCRATCH`]).
    async fn read(&mut self) -> Result<(), Close> {
        if self.buf.is_empty() {
            // Give the allocation back while the client is quiet.
            self.buf = BytesMut::new();
        }
        // A buffered frame is at most the cap plus its header (`check_header`):
        // never read past that.
        let room = (self.max_message + MAX_HEADER).saturating_sub(self.buf.len());
        let want = room.clamp(1, SCRATCH);
        // The stream's own read-readiness slot (this reader's waker alone),
        // not `readable()`, whose waiter-list future every idle connection
        // would hold.
        std::future::poll_fn(|cx| self.io.as_ref().poll_read_ready(cx))
            .await
            .map_err(|_| close_codes::NORMAL)?;
        let mut scratch = [0u8; SCRATCH];
        match self.io.try_read(&mut scratch[..want]) {
            Ok(0) => Err(close_codes::NORMAL),
            Ok(n) => {
                crate::metrics::metrics().ws_received_bytes.inc_by(n as u64);
                self.budget.bytes(n);
                self.buf.extend_from_slice(&scratch[..n]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(_) => Err(close_codes::NORMAL),
        }
    }

    /// One frame from the buffered bytes, if a whole one is there.
    fn decode(&mut self) -> Result<Step, Close> {
        check_header(&self.buf, self.partial.len(), self.max_message)?;
        self.take_rsv1()?;
        let Some(frame) = self.codec.decode(&mut self.buf).map_err(protocol_close)? else {
            return Ok(Step::NeedBytes);
        };
        let compressed = std::mem::take(&mut self.head_compressed);
        self.budget.frame();
        let message = match frame {
            Frame::Text(bytes) => text(self.inflated(bytes, compressed)?)?,
            Frame::Binary(bytes) => Incoming::Binary(self.inflated(bytes, compressed)?),
            Frame::Ping(bytes) => Incoming::Ping(bytes),
            Frame::Pong(_) => Incoming::Pong,
            Frame::Close(_) => Incoming::Close,
            Frame::Continuation(item) => match self.fragment(item, compressed)? {
                Some(message) => message,
                None => return Ok(Step::Fragment),
            },
        };
        Ok(Step::Message(message))
    }

    /// RSV1 on the frame at the head of the buffer: allowed on the first
    /// frame of a data message once compression is negotiated, where it is
    /// noted and cleared (actix-http's parser refuses any RSV bit); on
    /// anything else, a protocol error (RFC 7692 §6.1).
    fn take_rsv1(&mut self) -> Result<(), Close> {
        let Some(b0) = self.buf.first_mut() else {
            return Ok(());
        };
        if *b0 & RSV1 == 0 {
            return Ok(());
        }
        let opcode = *b0 & 0x0F;
        if !self.inflate || opcode == 0x0 || opcode >= 0x8 {
            return Err(close_codes::PROTOCOL_ERROR);
        }
        *b0 &= !RSV1;
        self.head_compressed = true;
        Ok(())
    }

    /// A whole message's payload, inflated if it was compressed, at most
    /// the cap either way.
    fn inflated(&self, bytes: Bytes, compressed: bool) -> Result<Bytes, Close> {
        if !compressed {
            return Ok(bytes);
        }
        match crate::deflate::inflate(&bytes, self.max_message) {
            Ok(plain) => Ok(Bytes::from(plain)),
            Err(crate::deflate::InflateError::TooBig) => Err(close_codes::MESSAGE_TOO_BIG),
            Err(crate::deflate::InflateError::Invalid) => Err(close_codes::INVALID_PAYLOAD),
        }
    }

    fn fragment(&mut self, item: Item, compressed: bool) -> Result<Option<Incoming>, Close> {
        let (bytes, last) = match item {
            Item::FirstText(bytes) => {
                self.partial = Partial::Text(BytesMut::new());
                self.partial_compressed = compressed;
                (bytes, false)
            }
            Item::FirstBinary(bytes) => {
                self.partial = Partial::Binary(BytesMut::new());
                self.partial_compressed = compressed;
                (bytes, false)
            }
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        match &mut self.partial {
            Partial::None => return Err(close_codes::PROTOCOL_ERROR),
            Partial::Text(joined) | Partial::Binary(joined) => {
                if joined.len() + bytes.len() > self.max_message {
                    return Err(close_codes::MESSAGE_TOO_BIG);
                }
                joined.extend_from_slice(&bytes);
            }
        }
        if !last {
            return Ok(None);
        }
        let compressed = std::mem::take(&mut self.partial_compressed);
        match std::mem::replace(&mut self.partial, Partial::None) {
            Partial::Text(joined) => Ok(Some(text(self.inflated(joined.freeze(), compressed)?)?)),
            Partial::Binary(joined) => Ok(Some(Incoming::Binary(
                self.inflated(joined.freeze(), compressed)?,
            ))),
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

/// The header of the frame at the start of `buf`, checked before its
/// payload is read (RFC 6455 §5.2, §5.4, §5.5, §10.4): a control frame must
/// be final and carry at most 125 bytes; a data frame, or a continuation
/// added to the `continuing` bytes already joined, must fit `max`.
fn check_header(buf: &[u8], continuing: usize, max: usize) -> Result<(), Close> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(());
    };
    let opcode = b0 & 0x0F;
    let len7 = b1 & 0x7F;
    if opcode >= 0x8 {
        // Control frames: FIN set, 125 bytes at most.
        if b0 & 0x80 == 0 || len7 > 125 {
            return Err(close_codes::PROTOCOL_ERROR);
        }
        return Ok(());
    }
    let declared = match len7 {
        126 if rest.len() >= 2 => u64::from(u16::from_be_bytes([rest[0], rest[1]])),
        127 if rest.len() >= 8 => u64::from_be_bytes(rest[..8].try_into().expect("eight bytes")),
        126 | 127 => return Ok(()),
        n => u64::from(n),
    };
    let joined = if opcode == 0x0 { continuing as u64 } else { 0 };
    if declared.saturating_add(joined) > max as u64 {
        return Err(close_codes::MESSAGE_TOO_BIG);
    }
    Ok(())
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
        paced_reader(bytes, max, ReadBudget::new(0, 0, 0)).await
    }

    /// The same, reading within `budget`.
    async fn paced_reader(bytes: Vec<u8>, max: usize, budget: ReadBudget) -> FrameReader {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        peer.write_all(&bytes).await.unwrap();
        // The bytes stay readable after the peer is gone; then the end.
        drop(peer);
        let (read, _) = server.into_split();
        FrameReader::new(read, BytesMut::new(), max, budget, true)
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

    /// A header declaring more than the cap is refused as soon as it is
    /// read: the payload it announces is never waited for nor buffered.
    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_its_payload() {
        for header in [
            vec![0x81, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0], // 2^40 bytes
            vec![0x82, 0x80 | 126, 0x10, 0x01],             // 4097 bytes
        ] {
            let mut bytes = header;
            bytes.extend_from_slice(&[0, 0, 0, 0]); // the mask
            bytes.extend_from_slice(&[b'a'; 100]); // the start of the payload
            let mut r = reader(bytes, 4096).await;
            let refused = tokio::time::timeout(std::time::Duration::from_secs(1), r.next()).await;
            assert_eq!(
                refused.expect("at once").unwrap_err(),
                close_codes::MESSAGE_TOO_BIG
            );
        }
        // Fragments whose running total would pass the cap: refused at the
        // header of the one that would.
        let mut parts = frame(false, 0x1, &[b'a'; 100]);
        parts.extend_from_slice(&[0x00, 0x80 | 126, 0x0F, 0xA0, 0, 0, 0, 0]); // 4000 more
        let mut r = reader(parts, 4096).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::MESSAGE_TOO_BIG);
    }

    #[tokio::test]
    async fn fragmented_or_oversized_control_frames_are_protocol_errors() {
        let mut r = reader(frame(false, 0x9, b"p"), 64).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::PROTOCOL_ERROR);
        let mut r = reader(frame(false, 0xA, b""), 64).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::PROTOCOL_ERROR);
        let mut r = reader(vec![0x89, 0x80 | 126, 0, 200], 4096).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::PROTOCOL_ERROR);
    }

    #[tokio::test]
    async fn binary_messages_keep_their_bytes() {
        let mut bytes = frame(false, 0x2, &[1, 2]);
        bytes.extend(frame(true, 0x0, &[3]));
        let mut r = reader(bytes, 64).await;
        assert!(matches!(r.next().await, Ok(Incoming::Binary(b)) if b[..] == [1, 2, 3]));
    }

    /// Many empty fragments (each completes nothing) are paid for from the
    /// frame budget: the reader pauses instead of spinning through them.
    #[tokio::test(start_paused = true)]
    async fn every_frame_is_paid_for_from_the_budget() {
        let mut bytes = frame(false, 0x1, b"");
        for _ in 0..99 {
            bytes.extend(frame(false, 0x0, b""));
        }
        bytes.extend(frame(true, 0x0, b"x"));
        // 10 frames a second, bursts of 20: 101 frames take about 8 s.
        let mut r = paced_reader(bytes, 64, ReadBudget::new(10, 0, 0)).await;
        let started = tokio::time::Instant::now();
        assert!(matches!(r.next().await, Ok(Incoming::Text(t)) if t == "x"));
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_secs(7),
            "paced by the budget: {took:?}"
        );
    }

    /// A client frame with RSV1 set (a compressed message's first frame).
    fn compressed_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = frame(fin, opcode, payload);
        f[0] |= RSV1;
        f
    }

    fn deflated(payload: &[u8]) -> Vec<u8> {
        crate::deflate::compress(payload, 15).unwrap().to_vec()
    }

    #[tokio::test]
    async fn compressed_messages_are_inflated_whole_or_in_fragments() {
        let json = format!(r#"{{"type":"message","content":"{}"}}"#, "abc ".repeat(80));
        let z = deflated(json.as_bytes());
        assert!(z.len() < 126);
        let mut bytes = compressed_frame(true, 0x1, &z);
        // The same split in two fragments, RSV1 on the first only, a ping between.
        bytes.extend(compressed_frame(false, 0x1, &z[..10]));
        bytes.extend(frame(true, 0x9, b"p"));
        bytes.extend(frame(true, 0x0, &z[10..]));
        // Then an uncompressed message: RSV1 is per message.
        bytes.extend(frame(true, 0x1, b"plain"));
        let mut r = reader(bytes, 4096).await;
        assert!(matches!(r.next().await, Ok(Incoming::Text(t)) if t == json));
        assert!(matches!(r.next().await, Ok(Incoming::Ping(_))));
        assert!(matches!(r.next().await, Ok(Incoming::Text(t)) if t == json));
        assert!(matches!(r.next().await, Ok(Incoming::Text(t)) if t == "plain"));
    }

    #[tokio::test]
    async fn a_deflate_bomb_gets_1009_and_bad_rsv1_gets_1002() {
        // 1 MiB of spaces in a few hundred bytes: refused after 4 KiB of inflation.
        let bomb = deflated(&vec![b' '; 1 << 20]);
        let mut bytes = vec![0x80 | RSV1 | 0x1, 0x80 | 126];
        bytes.extend_from_slice(&(bomb.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]); // a zero mask
        bytes.extend_from_slice(&bomb);
        let mut r = reader(bytes, 4096).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::MESSAGE_TOO_BIG);
        // RSV1 on a continuation or a control frame.
        let mut cont = frame(false, 0x1, b"a");
        cont.extend(compressed_frame(true, 0x0, b"b"));
        let mut r = reader(cont, 64).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::PROTOCOL_ERROR);
        let mut r = reader(compressed_frame(true, 0x9, b""), 64).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::PROTOCOL_ERROR);
        // Not valid deflate data; and invalid UTF-8 once inflated.
        let mut r = reader(compressed_frame(true, 0x1, &[0xff, 0xff]), 64).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::INVALID_PAYLOAD);
        let bad_utf8 = deflated(&[0xff; 300]);
        let mut r = reader(compressed_frame(true, 0x1, &bad_utf8), 4096).await;
        assert_eq!(r.next().await.unwrap_err(), close_codes::INVALID_PAYLOAD);
    }

    #[tokio::test]
    async fn without_compression_negotiated_rsv1_is_a_protocol_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let z = deflated(&[b'a'; 300]);
        peer.write_all(&compressed_frame(true, 0x1, &z))
            .await
            .unwrap();
        drop(peer);
        let (read, _) = server.into_split();
        let mut r = FrameReader::new(read, BytesMut::new(), 4096, ReadBudget::new(0, 0, 0), false);
        assert_eq!(r.next().await.unwrap_err(), close_codes::PROTOCOL_ERROR);
    }
}
