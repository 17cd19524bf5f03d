//! permessage-deflate for the load generator's clients (`--deflate`):
//! tungstenite has no compression, so this sits between the socket and
//! tungstenite and rewrites every compressed server frame (RSV1) into the
//! plain frame tungstenite expects, inflated with flate2. The clients'
//! own frames go out uncompressed (the extension allows it per message).
//! Without `--deflate` it passes the socket through untouched.

use flate2::{Decompress, FlushDecompress};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What a client offers, as browsers do.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

pub struct Inflating {
    io: TcpStream,
    /// Bytes read and not yet decoded.
    raw: Vec<u8>,
    /// Decoded bytes not yet handed to tungstenite.
    out: Vec<u8>,
    /// The HTTP response head has been passed through.
    upgraded: bool,
    /// `None`: no compression offered, bytes pass through.
    inflater: Option<Decompress>,
}

impl Inflating {
    pub fn new(io: TcpStream, deflate: bool) -> Self {
        Inflating {
            io,
            raw: Vec::new(),
            out: Vec::new(),
            upgraded: false,
            inflater: deflate.then(|| Decompress::new(false)),
        }
    }

    /// Move what `raw` holds, as far as it is whole, into `out`.
    fn decode(&mut self) -> io::Result<()> {
        if !self.upgraded {
            let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(());
            };
            self.out.extend(self.raw.drain(..end + 4));
            self.upgraded = true;
        }
        while let Some((head, len)) = frame_head(&self.raw) {
            if self.raw.len() < head + len {
                break;
            }
            let b0 = self.raw[0];
            let payload: Vec<u8> = self.raw.drain(..head + len).skip(head).collect();
            if b0 & 0x40 == 0 {
                push_frame(&mut self.out, b0, &payload);
                continue;
            }
            let plain = self.inflate(&payload)?;
            push_frame(&mut self.out, b0 & !0x40, &plain);
        }
        Ok(())
    }

    fn inflate(&mut self, payload: &[u8]) -> io::Result<Vec<u8>> {
        let mut input = payload.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let inflater = self.inflater.as_mut().ok_or_else(|| {
            io::Error::other("a compressed frame, and compression was not offered")
        })?;
        inflater.reset(false);
        let mut plain = Vec::with_capacity(payload.len() * 4 + 64);
        loop {
            let used = inflater.total_in() as usize;
            if plain.len() == plain.capacity() {
                plain.reserve(plain.capacity());
            }
            inflater
                .decompress_vec(&input[used..], &mut plain, FlushDecompress::Sync)
                .map_err(io::Error::other)?;
            if inflater.total_in() as usize == input.len() && plain.len() < plain.capacity() {
                return Ok(plain);
            }
        }
    }
}

/// A server frame's header length and payload length, if the header is whole.
fn frame_head(b: &[u8]) -> Option<(usize, usize)> {
    let len7 = *b.get(1)? & 0x7F;
    match len7 {
        126 => Some((4, u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize)),
        127 => {
            let bytes: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            Some((10, u64::from_be_bytes(bytes) as usize))
        }
        n => Some((2, n as usize)),
    }
}

fn push_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8]) {
    out.push(b0);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

impl AsyncRead for Inflating {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.inflater.is_none() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    this.raw.extend_from_slice(read.filled());
                    this.decode()?;
                }
            }
        }
    }
}

impl AsyncWrite for Inflating {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
