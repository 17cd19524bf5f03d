//! Every HTTP/1 request head on a connection gets a deadline, not only the
//! first. actix-http times the first head (`client_request_timeout`) and the
//! idle time between requests (keep-alive), but once a byte of the next
//! request arrives the keep-alive timer is cleared and no other starts: a
//! client could trickle the second request's head forever, and a few
//! thousand such connections hold every file descriptor of the node.
//!
//! [`HeadDeadline`] wraps the TCP stream below actix-http and watches the
//! bytes go by: from the first byte read after a response (or at the start)
//! to the blank line that ends the head (`\r\n\r\n`), at most [`HEAD_TIMEOUT`];
//! past it reads fail and actix-http drops the connection. It buffers
//! nothing, and holds a timer only while a head is arriving. A WebSocket
//! upgrade takes the bare stream back ([`HeadDeadline::into_inner`]).
//! (Pipelined requests, a head sent before the previous response, are timed
//! from that response on; no HTTP client in use pipelines.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How long a request head may take to arrive, from its first byte.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

pub struct HeadDeadline {
    io: TcpStream,
    phase: Phase,
}

enum Phase {
    /// Between requests: the next byte read starts a head.
    Idle,
    /// A head is arriving: its deadline, and how much of `\r\n\r\n` the
    /// bytes so far end with.
    Head {
        deadline: Pin<Box<Sleep>>,
        matched: u8,
    },
    /// The head is in; its body and handling are actix-http's business
    /// until the response is written.
    Request,
}

impl HeadDeadline {
    pub fn new(io: TcpStream) -> Self {
        HeadDeadline {
            io,
            phase: Phase::Idle,
        }
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.io
    }

    /// The bare stream (after an upgrade: no more HTTP on it).
    pub fn into_inner(self) -> TcpStream {
        self.io
    }

    /// Follow the head through newly read `bytes`.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if matches!(self.phase, Phase::Idle) {
            self.phase = Phase::Head {
                deadline: Box::pin(tokio::time::sleep(HEAD_TIMEOUT)),
                matched: 0,
            };
        }
        let Phase::Head { matched, .. } = &mut self.phase else {
            return;
        };
        const END: &[u8; 4] = b"\r\n\r\n";
        for &b in bytes {
            *matched = if b == END[*matched as usize] {
                *matched + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if *matched == 4 {
                self.phase = Phase::Request;
                return;
            }
        }
    }
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if let Phase::Head { deadline, .. } = &mut this.phase {
                    ready!(deadline.as_mut().poll(cx));
                    crate::limits::Limit::RequestHead.hit();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        // A response is going out: the next byte read starts the next head.
        if matches!(this.phase, Phase::Request) {
            this.phase = Phase::Idle;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        if matches!(this.phase, Phase::Request) {
            this.phase = Phase::Idle;
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (HeadDeadline, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (HeadDeadline::new(server), client)
    }

    #[tokio::test(start_paused = true)]
    async fn every_head_has_a_deadline_not_only_the_first() {
        let (mut server, mut client) = pair().await;
        let mut buf = [0u8; 64];
        client.write_all(b"GET / HTTP/1.1\r\n\r").await.unwrap();
        let n = server.read(&mut buf).await.unwrap();
        client.write_all(b"\n").await.unwrap();
        let m = server.read(&mut buf[n..]).await.unwrap();
        assert_eq!(
            &buf[..n + m],
            b"GET / HTTP/1.1\r\n\r\n",
            "the end split across reads"
        );
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        // Idle between requests: no deadline (keep-alive is actix-http's).
        tokio::time::advance(HEAD_TIMEOUT * 2).await;
        // The second head trickles: one byte, then nothing.
        client.write_all(b"G").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 1);
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_and_the_handler_are_not_timed() {
        let (mut server, mut client) = pair().await;
        let mut buf = [0u8; 64];
        client
            .write_all(b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n")
            .await
            .unwrap();
        let _head = server.read(&mut buf).await.unwrap();
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            server.read(&mut buf).await.map(|n| (n, server))
        });
        tokio::time::advance(HEAD_TIMEOUT * 3).await;
        client.write_all(b"hi").await.unwrap();
        let (n, _) = reading
            .await
            .unwrap()
            .expect("the body arrives, however late");
        assert_eq!(n, 2);
    }
}
