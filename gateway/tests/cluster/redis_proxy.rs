//! A TCP proxy between one gateway node and Redis, to make the moments that
//! are too short to hit by chance last long enough to test: a SUBSCRIBE that
//! takes effect late, or a connection that stays open while nothing gets
//! through. When Redis is gone the proxy drops its client connections too,
//! so the node sees the outage as it would without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Default)]
struct Rules {
    /// Hold a chunk that carries a SUBSCRIBE (and what follows it on that
    /// connection) until this is switched off.
    hold_subscribes: bool,
    /// Pass nothing from the node to Redis until resumed.
    paused: bool,
}

pub struct RedisProxy {
    pub port: u16,
    rules: Arc<watch::Sender<Rules>>,
    /// How many SUBSCRIBE chunks were held so far.
    held: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl RedisProxy {
    pub async fn start(redis_port: u16) -> RedisProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let rules = Arc::new(watch::Sender::new(Rules::default()));
        let held = Arc::new(AtomicUsize::new(0));
        let (shared, counter) = (Arc::clone(&rules), Arc::clone(&held));
        let accept = tokio::spawn(async move {
            while let Ok((node, _)) = listener.accept().await {
                let (rules, held) = (shared.subscribe(), Arc::clone(&counter));
                tokio::spawn(async move {
                    // Redis down: close at once, like a refused connection.
                    if let Ok(redis) = TcpStream::connect(("127.0.0.1", redis_port)).await {
                        relay(node, redis, rules, held).await;
                    }
                });
            }
        });
        RedisProxy {
            port,
            rules,
            held,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on, hold every SUBSCRIBE (and what follows it on its
    /// connection) until [`release_subscribes`](Self::release_subscribes).
    pub fn hold_subscribes(&self) {
        self.rules.send_modify(|r| r.hold_subscribes = true);
    }

    pub fn release_subscribes(&self) {
        self.rules.send_modify(|r| r.hold_subscribes = false);
    }

    /// Wait until a SUBSCRIBE is being held (the node re-subscribes).
    pub async fn wait_held_subscribe(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.held.load(Ordering::SeqCst) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no SUBSCRIBE reached the proxy within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Hold everything the node sends until [`resume`](Self::resume); the
    /// connections stay open, so the node believes it is connected.
    pub fn pause(&self) {
        self.rules.send_modify(|r| r.paused = true);
    }

    pub fn resume(&self) {
        self.rules.send_modify(|r| r.paused = false);
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(
    node: TcpStream,
    redis: TcpStream,
    mut rules: watch::Receiver<Rules>,
    held: Arc<AtomicUsize>,
) {
    let (mut node_rx, mut node_tx) = node.into_split();
    let (mut redis_rx, mut redis_tx) = redis.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match node_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let hold = rules.borrow().hold_subscribes;
            if hold
                && chunk
                    .windows(9)
                    .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
            {
                held.fetch_add(1, Ordering::SeqCst);
                if rules.wait_for(|r| !r.hold_subscribes).await.is_err() {
                    return;
                }
            }
            if rules.wait_for(|r| !r.paused).await.is_err() {
                return;
            }
            if redis_tx.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut redis_rx, &mut node_tx).await;
    };
    // Either side closing ends both: the node then reconnects.
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}
