//! Black-box test harness: a real node on 127.0.0.1:0 with a fresh SQLite
//! database per test, an HTTP client, and a WebSocket client that reads JSON frames.

use futures_util::{SinkExt, StreamExt};
use gateway::config::{self, Secret, Settings};
use gateway::startup::{Application, InProcessCluster, Stopper};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "test-secret-0123456789abcdef";
/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub port: u16,
    /// The admin port, when the test set `server.admin_port`.
    pub admin_port: Option<u16>,
    pub http: reqwest::Client,
    pub stopper: Stopper,
    pub app_state: actix_web::web::Data<gateway::state::AppState>,
    pub settings: Settings,
    /// Keeps the database directory alive for restarts within a test.
    pub dir: Arc<TempDir>,
    /// On the embedded default, the in-process cluster this node is part of
    /// ([`spawn_nodes`]); a restart rejoins it.
    pub cluster: Option<InProcessCluster>,
}

pub fn test_settings(dir: &TempDir) -> Settings {
    let mut s = config::load(None, Vec::new()).expect("default settings");
    s.server.port = 0;
    s.server.workers = 1;
    s.database.url = Secret::new(format!(
        "sqlite://{}/chat.db?mode=rwc",
        dir.path().display()
    ));
    s.auth.jwt_secret = Some(Secret::new(SECRET));
    s.log.level = std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into());
    // Tests drive traffic from one address as fast as they can; the flood
    // limits are switched on by the tests that are about them.
    s.limits.msg_rate = 0;
    s.limits.connect_rate_per_ip = 0;
    s.limits.auth_rate_per_ip = 0;
    s.limits.rest_write_rate = 0;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut nodes = spawn_nodes_with(1, tweak).await;
    nodes.pop().expect("one node")
}

/// `TEST_BACKEND=redis`: the same scenarios in cluster mode, on the Redis and
/// PostgreSQL that `scripts/test.sh` started: a unique key prefix and a fresh
/// PostgreSQL schema per test.
async fn cluster_backends(settings: &mut Settings) {
    use sea_orm::ConnectionTrait;
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    // Pids repeat across runs against one long-lived server: add the clock.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let unique = format!(
        "t{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let redis = std::env::var("TEST_REDIS_URL")
        .expect("TEST_BACKEND=redis needs TEST_REDIS_URL (run scripts/test.sh)");
    let pg = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_BACKEND=redis needs TEST_DATABASE_URL (run scripts/test.sh)");
    settings.redis.url = Some(Secret::new(redis));
    settings.redis.key_prefix = unique.clone();
    let admin = sea_orm::Database::connect(pg.as_str())
        .await
        .expect("PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {unique}"))
        .await
        .expect("create schema");
    let sep = if pg.contains('?') { '&' } else { '?' };
    settings.database.url = Secret::new(format!("{pg}{sep}options[search_path]={unique}"));
}

pub async fn start(
    settings: Settings,
    dir: Arc<TempDir>,
    cluster: Option<InProcessCluster>,
) -> TestApp {
    gateway::telemetry::init(&settings.log);
    let app = Application::build_in(settings.clone(), cluster.clone())
        .await
        .expect("gateway starts");
    let port = app.port();
    let admin_port = app.admin_port();
    let stopper = app.stopper();
    let app_state = app.state();
    tokio::spawn(app.run_until_stopped(false));
    TestApp {
        port,
        admin_port,
        http: reqwest::Client::new(),
        stopper,
        app_state,
        settings,
        dir,
        cluster,
    }
}

/// Two nodes of one service ([`spawn_nodes`]).
pub async fn spawn_pair() -> (TestApp, TestApp) {
    spawn_pair_with(|_| {}).await
}

/// [`spawn_pair`] with the same settings tweak on both nodes.
pub async fn spawn_pair_with(tweak: impl FnOnce(&mut Settings)) -> (TestApp, TestApp) {
    let mut nodes = spawn_nodes_with(2, tweak).await;
    let b = nodes.pop().expect("two nodes");
    (nodes.pop().expect("two nodes"), b)
}

/// `n` nodes forming one service: in cluster mode (`TEST_BACKEND=redis`)
/// they share Redis and the database; on the embedded default they share
/// the SQLite file and an in-process cluster (a linked bus, one presence),
/// all in this process.
pub async fn spawn_nodes(n: usize) -> Vec<TestApp> {
    spawn_nodes_with(n, |_| {}).await
}

/// [`spawn_nodes`] with the same settings tweak on every node.
pub async fn spawn_nodes_with(n: usize, tweak: impl FnOnce(&mut Settings)) -> Vec<TestApp> {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = test_settings(&dir);
    if std::env::var("TEST_BACKEND").as_deref() == Ok("redis") {
        cluster_backends(&mut settings).await;
    }
    tweak(&mut settings);
    let cluster = settings.redis.url.is_none().then(InProcessCluster::default);
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        nodes.push(start(settings.clone(), Arc::clone(&dir), cluster.clone()).await);
    }
    nodes
}

impl TestApp {
    /// The node's `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        self.get_text("/metrics").await
    }

    /// `GET path`: the body of its 200 answer, as text.
    pub async fn get_text(&self, path: &str) -> String {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Stop this node and start a new one on the same database.
    pub async fn restart(self) -> TestApp {
        self.stopper.stop().await;
        let mut settings = self.settings.clone();
        settings.server.port = 0;
        start(settings, Arc::clone(&self.dir), self.cluster.clone()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Register `name` and return (user id, token).
    pub async fn register(&self, name: &str) -> (i64, String) {
        let resp = self.try_register(name, "password123").await;
        assert_eq!(resp.status(), 201, "register {name}");
        let body: Value = resp.json().await.unwrap();
        (
            body["user"]["id"].as_i64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Open `/ws` with a token and extra query; panics if the upgrade fails.
    pub async fn ws(&self, token: &str, query: &str) -> WsClient {
        self.try_ws(&format!("token={token}{query}"))
            .await
            .unwrap_or_else(|(s, b)| panic!("upgrade failed: {s} {b}"))
    }

    /// Open `/ws?{query}`; on a refused upgrade, the status and body.
    pub async fn try_ws(&self, query: &str) -> Result<WsClient, (u16, String)> {
        let url = format!("ws://127.0.0.1:{}/ws?{}", self.port, query);
        connect(&url).await
    }

    /// A connection that has entered room 1 and read its `online_users`.
    pub async fn ws_in_general(&self, token: &str) -> WsClient {
        let mut c = self.ws(token, "").await;
        c.recv_type("online_users").await;
        c
    }

    /// A connection opened into `room` that has read its `online_users`.
    pub async fn ws_in(&self, token: &str, room: i64) -> WsClient {
        let mut c = self.ws(token, &format!("&room_id={room}")).await;
        c.recv_type("online_users").await;
        c
    }
}

pub async fn connect(url: &str) -> Result<WsClient, (u16, String)> {
    use tokio_tungstenite::tungstenite::Error;
    match tokio_tungstenite::connect_async(url).await {
        Ok((stream, _)) => Ok(WsClient { stream }),
        Err(Error::Http(resp)) => Err(crate::ws_refusal::refusal(&resp)),
        Err(e) => panic!("connect {url}: {e}"),
    }
}

/// Sign arbitrary claims with the test secret (or another key).
pub fn mint(claims: &Value, key: &str) -> String {
    shared::token::mint(key.as_bytes(), claims)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Send `content` to the connection's one room and wait for its answer
    /// (the stored message).
    pub async fn say(&mut self, content: &str) -> Value {
        self.send_json(json!({"type": "message", "content": content}))
            .await;
        self.recv_type("message").await
    }

    pub async fn send_text(&mut self, s: &str) {
        self.stream.send(Message::text(s)).await.expect("send");
    }

    /// The next JSON frame (pings and pongs skipped). Panics after [`WAIT`] or on close.
    pub async fn recv_json(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for a frame");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t).expect("server sent JSON");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Skip frames until one of type `ty` arrives. An unexpected `error`
    /// frame fails the test rather than being skipped.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv_json().await;
            if v["type"] == ty {
                return v;
            }
            assert_ne!(
                v["type"], "error",
                "unexpected error frame while waiting for {ty}: {v}"
            );
        }
    }

    /// The next frame that is not about who is online (`online_users`,
    /// `user_joined`, `user_left`, `presence_batch`).
    pub async fn next_event(&mut self) -> Value {
        loop {
            let v = self.recv_json().await;
            if !crate::presence_frames::is_presence(&v) {
                return v;
            }
        }
    }

    /// The close code the server sends; frames before it are skipped.
    pub async fn recv_close(&mut self) -> Option<u16> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Assert nothing but control frames arrives for `ms` milliseconds.
    pub async fn expect_silence(&mut self, ms: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .stream
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// A request as `token`: the status and the body (JSON; `Null` when empty,
/// a JSON string when it is not JSON).
pub async fn rest(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        },
    )
}
