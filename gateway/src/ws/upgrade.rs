//! The WebSocket upgrade, handled below actix-web: actix-http hands over every
//! request that carries `Upgrade: websocket` together with its TCP stream.
//! A handshake that passes [`handshake::check`] gets its 101 and the bare
//! stream becomes the session's: [`FrameReader`] and [`FrameWriter`] read and
//! write frames on it directly, with no HTTP dispatcher, channel or buffer
//! left per connection. A refused one gets protocol v1's `{"error":"..."}` and
//! the connection is closed.

use super::frame_reader::FrameReader;
use super::frame_writer::FrameWriter;
use super::handshake::{self, Refusal, Refused};
use super::read_budget::ReadBudget;
use super::session::{self, SessionParts};
use crate::conn::ConnHandle;
use crate::deflate::{self, Deflate};
use crate::limits::head_deadline::HeadDeadline;
use crate::state::AppState;
use actix_codec::Framed;
use actix_http::RequestHead;
use actix_http::body::BodySize;
use actix_http::h1::{self, Message};
use actix_http::header::{self, HeaderValue};
use actix_http::{ConnectionType, Method, Request, Response};
use actix_service::{ServiceFactory, fn_service};
use actix_web::web;
use bytes::Bytes;
use bytes::BytesMut;
use futures_util::SinkExt;
use std::task::{Context, Waker};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::timeout;

/// The connection as actix-http hands it over: the request, and the stream
/// with what its HTTP parser read past the request.
pub type Upgrading = (Request, Framed<HeadDeadline, h1::Codec>);

/// The upgrade service for actix-http's `HttpService::upgrade`.
pub fn service(
    state: web::Data<AppState>,
) -> impl ServiceFactory<
    Upgrading,
    Config = (),
    Response = (),
    Error = actix_http::Error,
    InitError = (),
> + Clone {
    fn_service(move |(req, framed): Upgrading| {
        let state = state.clone();
        // Boxed: actix-server keeps one task per TCP connection whose size
        // is the largest future it may run; the handshake's database and
        // Redis futures are big, and must not set the size of every
        // connection's task.
        let fut = Box::pin(upgrade(state, req, framed));
        async move {
            fut.await;
            Ok::<_, actix_http::Error>(())
        }
    })
}

async fn upgrade(
    state: web::Data<AppState>,
    req: Request,
    framed: Framed<HeadDeadline, h1::Codec>,
) {
    let write_timeout = state.settings.ws.write_timeout();
    let head = req.head();
    let outcome = Outcome::start(head.uri.path() == "/ws");
    if head.uri.path() != "/ws" {
        let refusal = Refusal::new(Refused::NotFound, "WebSocket upgrades are served at /ws");
        return refuse(framed, refusal, outcome).await;
    }
    if head.method != Method::GET {
        let refusal = Refusal::new(Refused::Method, "Use GET");
        return refuse(framed, refusal, outcome).await;
    }
    let admitted = match handshake::check(&state, head).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refuse(framed, refusal, outcome).await,
    };
    let compression = state.settings.ws.compression;
    let accepted = accept(framed, head, write_timeout, compression).await;
    outcome.done(if accepted.is_some() { 101 } else { CLIENT_GONE });
    let Some(socket) = accepted else {
        state
            .node
            .user_conns
            .release(admitted.user.id, &admitted.key)
            .await;
        return;
    };
    // The client's request id (`X-Request-Id`, as a proxy or a test sets it)
    // ties its log lines to this connection; bounded and printable only, as
    // it is the client's input.
    tracing::debug!(
        conn = %admitted.key,
        user_id = %admitted.user.id,
        room = %admitted.first_room,
        after_seq = admitted.after_seq,
        client = ?admitted.client,
        request_id = request_id(head).unwrap_or("-"),
        "upgraded"
    );
    let limits = &state.settings.limits;
    let (conn, queue) = ConnHandle::new(admitted.key, admitted.user, limits.outbound_queue);
    let parts = Box::new(SessionParts {
        reader: FrameReader::new(
            socket.read,
            socket.read_buf,
            limits.max_frame_bytes,
            read_budget(limits),
            socket.deflate.is_some(),
        ),
        writer: FrameWriter::new(socket.write, socket.deflate),
        state,
        conn,
        queue,
        first_room: admitted.first_room,
        after_seq: admitted.after_seq,
        slot: admitted.slot,
    });
    // Its own task on this worker: the HTTP dispatcher of the handshake is
    // done and freed.
    actix_rt::spawn(session::run(parts));
}

/// A socket past its 101: its two halves, and the bytes the HTTP parser
/// read past the request (a client that sent frames before it saw the 101).
pub struct Accepted {
    pub read: OwnedReadHalf,
    pub read_buf: BytesMut,
    pub write: OwnedWriteHalf,
    /// permessage-deflate, if the client offered it and it is on.
    pub deflate: Option<Deflate>,
}

/// Answer the handshake in `head` with its 101 and take the bare stream
/// over; `None` when the headers are no WebSocket handshake or the client
/// is gone. The one way a socket becomes a WebSocket here (the Autobahn echo
/// endpoint of the conformance run takes it too). With `compression` on,
/// the client's first acceptable permessage-deflate offer is accepted.
pub async fn accept(
    mut framed: Framed<HeadDeadline, h1::Codec>,
    head: &RequestHead,
    write_timeout: Duration,
    compression: bool,
) -> Option<Accepted> {
    let mut response = actix_http::ws::handshake_response(head);
    let deflate = compression
        .then(|| {
            let offers = head.headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS);
            deflate::negotiate(offers.filter_map(|v| v.to_str().ok()))
        })
        .flatten();
    if let Some(deflate) = deflate {
        let value = HeaderValue::from_str(&deflate.response()).ok()?;
        response.insert_header((header::SEC_WEBSOCKET_EXTENSIONS, value));
        crate::metrics::metrics().ws_compressed_connections.inc();
    }
    let response = response.message_body(()).ok()?;
    let sent = timeout(
        write_timeout,
        framed.send(Message::Item((response, BodySize::None))),
    );
    if !matches!(sent.await, Ok(Ok(()))) {
        return None;
    }
    let parts = framed.into_parts();
    let io = parts.io.into_inner();
    // Frames are batched per write already: Nagle would only add latency.
    let _ = io.set_nodelay(true);
    forget_dispatcher_wakers(&io);
    let (read, write) = io.into_split();
    Some(Accepted {
        read,
        read_buf: parts.read_buf,
        write,
        deflate,
    })
}

/// How fast a connection's socket is read: `limits.frame_rate` frames and
/// `limits.read_bytes_rate` bytes per second.
fn read_budget(limits: &crate::config::LimitsSettings) -> ReadBudget {
    ReadBudget::new(
        limits.frame_rate,
        limits.read_bytes_rate,
        2 * limits.max_frame_bytes,
    )
}

/// `X-Request-Id`, if it is 1 to 64 printable ASCII characters.
fn request_id(head: &actix_http::RequestHead) -> Option<&str> {
    let id = head.headers.get("x-request-id")?.to_str().ok()?;
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())).then_some(id)
}

/// The HTTP dispatcher's task polled this stream, so the stream's readiness
/// slots still hold that task's waker, and a waker keeps its (finished)
/// task's memory allocated: ~1.4 KiB per connection for as long as the
/// connection lives. Polling once with a no-op waker replaces them; the
/// session's own reads and writes register their wakers as they need them.
fn forget_dispatcher_wakers(io: &TcpStream) {
    let mut noop = Context::from_waker(Waker::noop());
    let _ = io.poll_read_ready(&mut noop);
    let _ = io.poll_write_ready(&mut noop);
}

/// The status of an upgrade whose client went away before its 101 was
/// written (nginx's convention).
const CLIENT_GONE: u16 = 499;

/// Counts an upgrade in `chat_gateway_http_requests_total{route="/ws",status}`
/// and its duration, like any REST call: 101, or the refusal's status. So
/// the error-rate alert and the dashboards see `/ws` too (the upgrade
/// bypasses actix-web's middleware).
struct Outcome {
    route: &'static str,
    started: std::time::Instant,
}

impl Outcome {
    fn start(is_ws: bool) -> Self {
        Outcome {
            route: if is_ws { "/ws" } else { "unmatched" },
            started: std::time::Instant::now(),
        }
    }

    fn done(self, status: u16) {
        let m = crate::metrics::metrics();
        m.http_requests
            .with_label_values(&[self.route, &status.to_string()])
            .inc();
        m.http_seconds
            .with_label_values(&[self.route])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// Answer with the refusal and close the connection.
async fn refuse(mut framed: Framed<HeadDeadline, h1::Codec>, refusal: Refusal, outcome: Outcome) {
    outcome.done(refusal.status.as_u16());
    let body = Bytes::from(refusal.body());
    let mut response = Response::with_body(refusal.status, ());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    let len = body.len() as u64;
    let answer = async {
        framed
            .feed(Message::Item((response, BodySize::Sized(len))))
            .await?;
        framed.feed(Message::Chunk(Some(body))).await?;
        framed.feed(Message::Chunk(None)).await?;
        // (`close` alone would not write what `feed` encoded.)
        framed.flush().await?;
        framed.close().await
    };
    let _ = timeout(std::time::Duration::from_secs(5), answer).await;
}
