//! One gateway process for one attack: start it, watch it, read it.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const SECRET: &str = "attack-battery-secret-0123456789";
/// What everyone else must see while an attack runs.
pub const HEALTHZ_MAX: Duration = Duration::from_millis(500);
pub const CONNECT_MAX: Duration = Duration::from_secs(2);

pub struct Node {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    log: PathBuf,
    pub http: reqwest::Client,
}

use crate::free_port::free_port;

impl Node {
    /// The binary with default settings but for `env`, on a free port.
    pub async fn start(env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("gateway.log");
        let out = std::fs::File::create(&log).unwrap();
        // ATTACK_GATEWAY_BIN: another build to attack (an older one, to see
        // a regression test fail without its fix).
        let bin = std::env::var("ATTACK_GATEWAY_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_gateway").to_owned());
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("CHAT__") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("CHAT__SERVER__PORT", port.to_string())
            .env(
                "CHAT__DATABASE__URL",
                format!("sqlite://{}/chat.db?mode=rwc", dir.path().display()),
            )
            .env("CHAT__AUTH__JWT_SECRET", SECRET)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let mut node = Node {
            child: cmd.spawn().expect("start the gateway binary"),
            port,
            dir,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("the gateway exited ({status}):\n{}", node.log());
            }
            if let Ok(r) = node.http.get(node.url("/readyz")).send().await
                && r.status() == 200
            {
                return node;
            }
            assert!(Instant::now() < deadline, "not ready:\n{}", node.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `clients` tasks at once against `path`, each given the node's HTTP
    /// client, the URL and its index, and counting the statuses it got; the
    /// counts of all of them, added up.
    pub async fn flood<F, Fut>(&self, path: &str, clients: usize, client: F) -> BTreeMap<u16, usize>
    where
        F: Fn(reqwest::Client, String, usize) -> Fut,
        Fut: Future<Output = BTreeMap<u16, usize>> + Send + 'static,
    {
        let tasks: Vec<_> = (0..clients)
            .map(|c| tokio::spawn(client(self.http.clone(), self.url(path), c)))
            .collect();
        let mut all = BTreeMap::new();
        for t in tasks {
            for (status, n) in t.await.unwrap() {
                *all.entry(status).or_default() += n;
            }
        }
        all
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// A token for user `id` (created from the claims on first use).
    pub fn token(&self, id: i64) -> String {
        let claims =
            shared::token::TokenClaims::new(id.to_string(), 3600).username(format!("u{id}"));
        shared::token::mint(SECRET.as_bytes(), &claims)
    }

    /// A counter of `/metrics`, summed over its label sets that contain `labels`.
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Start sampling `/healthz` every 100 ms.
    pub fn watch(&self) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let worst_ms = Arc::new(AtomicU64::new(0));
        let url = self.url("/healthz");
        let (s, w) = (Arc::clone(&stop), Arc::clone(&worst_ms));
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let mut samples = 0u32;
            while !s.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = matches!(http.get(&url).send().await, Ok(r) if r.status() == 200);
                let took = if ok {
                    started.elapsed()
                } else {
                    Duration::from_secs(60)
                };
                w.fetch_max(took.as_millis() as u64, Ordering::Relaxed);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()))
                    .await;
            }
            samples
        });
        Watch {
            started: tokio::time::Instant::now(),
            stop,
            worst_ms,
            task,
        }
    }

    /// A new client's WebSocket: how long until its `online_users`.
    pub async fn connect_time(&self, user: i64) -> Duration {
        use futures_util::StreamExt;
        let started = Instant::now();
        let url = format!("ws://{}/ws?token={}", self.addr(), self.token(user));
        let within = tokio::time::timeout(Duration::from_secs(10), async {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                .await
                .expect("upgrade");
            while let Some(Ok(m)) = ws.next().await {
                if m.to_text().is_ok_and(|t| t.contains("online_users")) {
                    return;
                }
            }
            panic!("no online_users");
        })
        .await;
        assert!(
            within.is_ok(),
            "a new WebSocket did not connect within 10 s"
        );
        started.elapsed()
    }

    /// What every attack test checks about everyone else at its end.
    pub async fn assert_served(
        &mut self,
        watch: Watch,
        rss_before: u64,
        rss_bound_mib: u64,
        what: &str,
    ) {
        let (samples, worst) = watch.stop().await;
        assert!(self.alive(), "{what}: the node died:\n{}", self.log());
        assert!(samples >= 3, "{what}: too few /healthz samples ({samples})");
        assert!(
            worst <= HEALTHZ_MAX,
            "{what}: /healthz took up to {worst:?} during the attack (bound {HEALTHZ_MAX:?})"
        );
        let connect = self.connect_time(999_999).await;
        assert!(
            connect <= CONNECT_MAX,
            "{what}: a new WebSocket took {connect:?} (bound {CONNECT_MAX:?})"
        );
        let grew = self.rss_kib().saturating_sub(rss_before) / 1024;
        assert!(
            grew < rss_bound_mib,
            "{what}: RSS grew by {grew} MiB (bound {rss_bound_mib} MiB)"
        );
        println!(
            "{what}: /healthz worst {worst:?} over {samples} samples, new WebSocket in {connect:?}, RSS +{grew} MiB"
        );
    }

    pub async fn register(&self, name: &str) -> Result<String, (u16, Value)> {
        let r = self
            .http
            .post(self.url("/api/auth/register"))
            .json(&json!({"username": name, "password": "password123"}))
            .send()
            .await
            .map_err(|e| (0, json!(e.to_string())))?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == 201 {
            Ok(body["token"].as_str().unwrap().to_owned())
        } else {
            Err((status, body))
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Watch {
    started: tokio::time::Instant,
    stop: Arc<AtomicBool>,
    worst_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<u32>,
}

impl Watch {
    /// (samples taken, the slowest answer; a failed one counts as 60 s).
    pub async fn stop(self) -> (u32, Duration) {
        // At least a second of samples, however short the attack.
        tokio::time::sleep_until(self.started + Duration::from_secs(1)).await;
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.task.await.unwrap();
        (
            samples,
            Duration::from_millis(self.worst_ms.load(Ordering::Relaxed)),
        )
    }
}
