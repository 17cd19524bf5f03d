//! A WebSocket echo endpoint on the gateway's own transport, for the
//! Autobahn|Testsuite conformance run (`scripts/autobahn.sh`): the same
//! listener wrapper, upgrade ([`accept`]), frame reader and frame writer as
//! `/ws` (permessage-deflate negotiated as `/ws` does, each echo compressed
//! on its own), echoing every message instead of chatting. Test tooling only:
//! never part of the shipped routes.
//!
//! ```sh
//! cargo run --example autobahn_echo -- 127.0.0.1:9001
//! ```

use actix_codec::Framed;
use actix_http::{HttpService, Protocol, Request, Response, StatusCode, h1};
use actix_service::{ServiceFactoryExt, fn_service};
use gateway::limits::head_deadline::HeadDeadline;
use gateway::ws::frame_reader::{FrameReader, Incoming};
use gateway::ws::frame_writer::FrameWriter;
use gateway::ws::read_budget::ReadBudget;
use gateway::ws::upgrade::{Accepted, accept};
use shared::close_codes;
use std::time::Duration;
use tokio::net::TcpStream;

/// Section 9 of the suite sends messages of up to 16 MiB.
const MAX_MESSAGE: usize = 32 << 20;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    actix_rt::System::new().block_on(async move {
        println!("echo on ws://{addr}");
        actix_server::Server::build()
            .bind("echo", addr, || {
                let http = HttpService::build()
                    .upgrade(fn_service(
                        |(req, framed): (Request, Framed<HeadDeadline, h1::Codec>)| async move {
                            if let Some(socket) =
                                accept(framed, req.head(), Duration::from_secs(10), true).await
                            {
                                echo(socket).await;
                            }
                            Ok::<_, actix_http::Error>(())
                        },
                    ))
                    .finish(|_: Request| async {
                        Ok::<_, std::convert::Infallible>(Response::new(StatusCode::NOT_FOUND))
                    });
                fn_service(|io: TcpStream| {
                    let peer = io.peer_addr().ok();
                    std::future::ready(Ok((HeadDeadline::new(io), Protocol::Http1, peer)))
                })
                .and_then(http)
            })?
            .run()
            .await
    })
}

/// Every message back as it came; a close answered, a protocol error
/// failing the connection with its code, as a gateway session does.
async fn echo(socket: Accepted) {
    let mut reader = FrameReader::new(
        socket.read,
        socket.read_buf,
        MAX_MESSAGE,
        ReadBudget::new(0, 0, 0),
        socket.deflate.is_some(),
    );
    let mut writer = FrameWriter::new(socket.write, socket.deflate);
    let close = loop {
        match reader.next().await {
            Ok(Incoming::Text(text)) => writer.text(text.as_bytes()),
            Ok(Incoming::Binary(bytes)) => writer.binary(&bytes),
            Ok(Incoming::Ping(payload)) => writer.pong(&payload),
            Ok(Incoming::Pong) => continue,
            Ok(Incoming::Close) => break close_codes::NORMAL,
            Err(code) => break code,
        }
        if writer.flush().await.is_err() {
            return;
        }
    };
    writer.close(close);
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}
