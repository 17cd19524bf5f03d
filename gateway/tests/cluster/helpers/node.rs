//! One gateway node: a separate `gateway` process configured only through
//! `CHAT__*` variables, its start (until `/readyz` answers 200), stop and
//! `kill -9`, and its HTTP helpers (`/readyz` and the backend checks in it).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;
use tokio::time::Instant;

use super::processes::log_file;
use super::{Proc, eventually, free_port, tail};

/// How long a node may take to answer `/readyz` 200 after it is spawned.
const NODE_START: Duration = Duration::from_secs(30);

/// One `gateway` process.
pub struct GatewayNode {
    pub name: String,
    pub port: u16,
    pub log: PathBuf,
    env: Vec<(String, String)>,
    proc: Option<Proc>,
}

impl GatewayNode {
    /// Spawn it with `env` (plus host, port, workers, log settings) and wait
    /// until `/readyz` answers 200. Retries on another port if the picked
    /// one was taken meanwhile.
    pub async fn start(name: &str, dir: &Path, env: &[(String, String)]) -> GatewayNode {
        let mut last = String::new();
        for attempt in 0..3 {
            let mut node = GatewayNode {
                name: name.to_owned(),
                port: free_port(),
                log: dir.join(format!("node-{name}.log")),
                env: env.to_vec(),
                proc: None,
            };
            node.spawn();
            match node.wait_ready_or_exit(NODE_START).await {
                Ok(()) => return node,
                Err(e) if e.contains("cannot listen") && attempt < 2 => last = e,
                Err(e) => panic!("node {name} did not become ready: {e}"),
            }
        }
        panic!("node {name} did not start: {last}");
    }

    /// Its `CHAT__*` settings, with `key` set to `value` (to start a sibling
    /// configured differently).
    pub fn env_with(&self, key: &str, value: &str) -> Vec<(String, String)> {
        let mut env: Vec<_> = self.env.iter().filter(|(k, _)| k != key).cloned().collect();
        env.push((key.to_owned(), value.to_owned()));
        env
    }

    fn spawn(&mut self) {
        let (out, err) = log_file(&self.log);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CHAT__") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("CHAT__SERVER__HOST", "127.0.0.1")
            .env("CHAT__SERVER__PORT", self.port.to_string())
            .env("CHAT__SERVER__WORKERS", "1")
            // Scenarios drive traffic and connections from one address; the
            // flood limits have tests of their own.
            .env("CHAT__LIMITS__MSG_RATE", "0")
            .env("CHAT__LIMITS__CONNECT_RATE_PER_IP", "0")
            .env("CHAT__LIMITS__AUTH_RATE_PER_IP", "0")
            .env("CHAT__LIMITS__REST_WRITE_RATE", "0")
            .env("CHAT__SERVER__DRAIN_WINDOW_SECS", "1")
            .env(
                "CHAT__LOG__LEVEL",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("CHAT__LOG__FORMAT", "pretty")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(out)
            .stderr(err);
        self.proc = Some(Proc::spawn(&format!("gateway {}", self.name), &mut cmd));
    }

    async fn wait_ready_or_exit(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.proc.as_mut().and_then(|p| p.try_exited()) {
                self.proc = None;
                return Err(format!(
                    "the process exited ({status}); its log:\n{}",
                    tail(&self.log, 40)
                ));
            }
            if self.ready_checks().await.is_ok_and(|c| c.ready()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "/readyz is not 200 after {within:?}; log:\n{}",
                    tail(&self.log, 40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// `/readyz` status, or None when the node does not answer (within 10 s).
    pub async fn readyz(&self) -> Option<u16> {
        reqwest::Client::new()
            .get(self.url("/readyz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// `/readyz` status and body.
    pub async fn readyz_body(&self) -> Result<(u16, String), String> {
        let r = reqwest::Client::new()
            .get(self.url("/readyz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.unwrap_or_default()))
    }

    /// `/readyz`'s answer: 200 unless the node is stopping, with the state
    /// of its backends in the body.
    pub async fn ready_checks(&self) -> Result<ReadyChecks, String> {
        let (status, body) = self.readyz_body().await?;
        let body: Value =
            serde_json::from_str(&body).map_err(|e| format!("{status} {body}: {e}"))?;
        let check = |name: &str| {
            body["checks"][name]
                .as_bool()
                .ok_or_else(|| format!("no checks.{name} in {body}"))
        };
        Ok(ReadyChecks {
            http: status,
            status: body["status"].as_str().unwrap_or_default().to_owned(),
            database: check("database")?,
            bus: check("bus")?,
            draining: check("draining")?,
        })
    }

    /// Poll `/readyz` until the node reports its bus (Redis) `up` or not.
    /// Either way it must still take traffic (200): a backend outage,
    /// shared by every node, does not make one unready.
    pub async fn wait_bus(&self, up: bool, within: Duration) {
        self.wait_checks(within, &format!("bus up = {up}"), |c| c.bus == up)
            .await
    }

    /// As [`Self::wait_bus`], for the database.
    pub async fn wait_database(&self, up: bool, within: Duration) {
        self.wait_checks(within, &format!("database up = {up}"), |c| c.database == up)
            .await
    }

    async fn wait_checks(&self, within: Duration, what: &str, want: impl Fn(&ReadyChecks) -> bool) {
        let checks = eventually(within, &format!("node {}: {what}", self.name), || async {
            let c = self.ready_checks().await?;
            if want(&c) {
                Ok(c)
            } else {
                Err(format!("{c:?}"))
            }
        })
        .await;
        let expected = if checks.database && checks.bus {
            "ready"
        } else {
            "degraded"
        };
        assert_eq!(
            (checks.http, checks.status.as_str()),
            (200, expected),
            "node {}: /readyz with {checks:?}",
            self.name
        );
    }

    /// `kill -9`: no cleanup at all on the node's side.
    pub fn kill9(&mut self) {
        self.proc.as_mut().expect("node is running").kill9();
        self.proc = None;
    }

    /// Send SIGTERM (graceful stop) without waiting.
    pub fn signal_term(&self) {
        self.proc.as_ref().expect("node is running").signal("TERM");
    }

    /// Wait for the process to exit (after [`Self::signal_term`]); its status.
    pub async fn wait_exited(&mut self, within: Duration) -> ExitStatus {
        let p = self.proc.as_mut().expect("node is running");
        let status = p
            .wait_exit(within)
            .await
            .unwrap_or_else(|| panic!("node {} did not exit within {within:?}", self.name));
        self.proc = None;
        status
    }

    /// SIGTERM and wait for the exit status.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal_term();
        self.wait_exited(within).await
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

/// What a node's `/readyz` said.
#[derive(Debug, Clone)]
pub struct ReadyChecks {
    pub http: u16,
    /// `ready`, `degraded` or `not_ready`.
    pub status: String,
    pub database: bool,
    pub bus: bool,
    pub draining: bool,
}

impl ReadyChecks {
    /// Taking traffic with every backend up.
    pub fn ready(&self) -> bool {
        self.http == 200 && self.status == "ready"
    }
}
