//! The WebSocket upgrade, handled below actix-web: actix-http hands over every
//! request that carries `Upgrade: websocket` together with its TCP stream.
//! A handshake that passes [`handshake::check`] gets its 101 and the bare
//! stream becomes the session's: [`FrameReader`] and [`FrameWriter`] read and
//! write frames on it directly, with no HTTP dispatcher, channel or buffer
//! left per connection. A refused one gets the seed's `{"error":"..."}` and
//! the connection is closed.

use super::conn::ConnHandle;
use super::frame_reader::FrameReader;
use super::frame_writer::FrameWriter;
use super::handshake::{self, Refusal};
use super::session::{self, SessionParts};
use crate::state::AppState;
use actix_codec::Framed;
use actix_http::body::BodySize;
use actix_http::h1::{self, Message};
use actix_http::header::{self, HeaderValue};
use actix_http::{ConnectionType, Method, Request, Response, StatusCode};
use actix_service::{ServiceFactory, fn_service};
use actix_web::web;
use bytes::Bytes;
use futures_util::SinkExt;
use std::task::{Context, Waker};
use tokio::net::TcpStream;
use tokio::time::timeout;

type Upgrading = (Request, Framed<TcpStream, h1::Codec>);

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
    mut framed: Framed<TcpStream, h1::Codec>,
) {
    let write_timeout = state.settings.ws.write_timeout();
    let head = req.head();
    if head.uri.path() != "/ws" {
        let refusal = Refusal::new(
            StatusCode::NOT_FOUND,
            "WebSocket upgrades are served at /ws",
        );
        return refuse(framed, refusal).await;
    }
    if head.method != Method::GET {
        let refusal = Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "Use GET");
        return refuse(framed, refusal).await;
    }
    let admitted = match handshake::check(&state, head).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refuse(framed, refusal).await,
    };
    let accepted = match actix_http::ws::handshake_response(head).message_body(()) {
        Ok(response) => {
            let sent = timeout(
                write_timeout,
                framed.send(Message::Item((response, BodySize::None))),
            );
            matches!(sent.await, Ok(Ok(())))
        }
        Err(_) => false,
    };
    if !accepted {
        state
            .node
            .user_conns
            .release(admitted.user.id, &admitted.key)
            .await;
        return;
    }
    // The client's request id (`X-Request-Id`, as a proxy or a test sets it)
    // ties its log lines to this connection; bounded and printable only, as
    // it is the client's input.
    tracing::debug!(
        conn = %admitted.key,
        user_id = %admitted.user.id,
        room = %admitted.first_room,
        after_seq = admitted.after_seq,
        request_id = request_id(head).unwrap_or("-"),
        "upgraded"
    );
    let parts = framed.into_parts();
    // Frames are batched per write already: Nagle would only add latency.
    let _ = parts.io.set_nodelay(true);
    forget_dispatcher_wakers(&parts.io);
    let (read, write) = parts.io.into_split();
    let (conn, queue) = ConnHandle::new(
        admitted.key,
        admitted.user,
        state.settings.limits.outbound_queue,
    );
    let parts = SessionParts {
        reader: FrameReader::new(read, parts.read_buf, state.settings.limits.max_frame_bytes),
        writer: FrameWriter::new(write),
        state,
        conn,
        queue,
        first_room: admitted.first_room,
        after_seq: admitted.after_seq,
        slot: admitted.slot,
    };
    // Its own task on this worker: the HTTP dispatcher of the handshake is
    // done and freed.
    actix_rt::spawn(session::run(parts));
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

/// Answer with the refusal and close the connection.
async fn refuse(mut framed: Framed<TcpStream, h1::Codec>, refusal: Refusal) {
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
