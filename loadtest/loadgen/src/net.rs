//! Opening WebSocket connections from chosen loopback source addresses
//! (one address has ~28,000 ephemeral ports), with small buffers so that
//! one process can hold ~19,000 of them.

use crate::inflating::{self, Inflating};
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

pub type Ws = WebSocketStream<Inflating>;

/// `127.0.0.1-4` → 127.0.0.1 ..= 127.0.0.4; or a comma-free single address.
pub fn parse_sources(spec: &str) -> Vec<IpAddr> {
    if let Some((first, last)) = spec.split_once('-') {
        let first: std::net::Ipv4Addr = first.parse().expect("--sources: first address");
        let last: u8 = last.parse().expect("--sources: last octet");
        let o = first.octets();
        (o[3]..=last)
            .map(|x| IpAddr::from([o[0], o[1], o[2], x]))
            .collect()
    } else {
        vec![spec.parse().expect("--sources: an IPv4 address")]
    }
}

/// `http://host:port` → the socket address to dial.
pub fn target(base: &str) -> SocketAddr {
    let hostport = base
        .trim_start_matches("http://")
        .trim_start_matches("ws://")
        .trim_end_matches('/');
    hostport
        .parse()
        .unwrap_or_else(|_| panic!("{base}: give an address as http://IP:PORT"))
}

/// `deflate`: offer permessage-deflate (and inflate what comes compressed).
pub async fn connect(
    source: IpAddr,
    addr: SocketAddr,
    path_and_query: &str,
    deflate: bool,
) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut request = format!("ws://{addr}{path_and_query}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if deflate {
        request.headers_mut().insert(
            "sec-websocket-extensions",
            inflating::OFFER.parse().expect("a header value"),
        );
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let stream = Inflating::new(stream, deflate);
    let (ws, _) = client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}
