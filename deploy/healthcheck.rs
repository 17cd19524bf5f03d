//! `healthcheck [PATH]`: a tiny HTTP probe for the container's HEALTHCHECK.
//!
//! The runtime image is distroless (no shell, no curl), so the Dockerfile
//! compiles this file with plain `rustc` (std only, no crates) next to the
//! gateway. It sends `GET PATH` (default `/healthz`) to 127.0.0.1 on
//! `CHAT__SERVER__ADMIN_PORT` if set (the only port serving health then),
//! else `CHAT__SERVER__PORT` (default 8080), and exits 0 on a 2xx answer, 1
//! on anything else, within about 2 seconds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/healthz".to_owned());
    let setting = ["CHAT__SERVER__ADMIN_PORT", "CHAT__SERVER__PORT"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().map(|value| (name, value)));
    let port = match setting {
        Some((name, p)) => match p.trim().parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => {
                eprintln!("healthcheck: {name}={p:?} is not a fixed port");
                return ExitCode::FAILURE;
            }
        },
        None => 8080,
    };
    match probe(port, &path) {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("healthcheck: GET {path} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: GET {path} on port {port}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(port: u16, path: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: healthcheck\r\nConnection: close\r\n\r\n"
    )?;
    // The status line is all we need: "HTTP/1.1 200 OK".
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| line.starts_with("HTTP/1."))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP answer: {:?}", line.lines().next().unwrap_or("")),
            )
        })
}
