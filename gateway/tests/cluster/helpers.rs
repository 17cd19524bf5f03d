//! Multi-process harness for cluster mode.
//!
//! Every test gets its own temporary directory, its own Redis (one
//! `redis-server`, or three in Redis Cluster mode), a fresh PostgreSQL
//! database (on the server of `TEST_DATABASE_URL`, or on a PostgreSQL cluster
//! of its own when the test stops the database), and N gateway nodes, each a
//! separate `gateway` process configured only through `CHAT__*` variables, so
//! a test can `kill -9` a node or stop a backend under it.
//!
//! Every child process is held by a [`Proc`] guard that kills it on drop, so
//! nothing leaks when a test panics (and nextest's SIGTERM to the test's
//! process group reaches them too). When a test fails, [`Cluster`] prints
//! the tail of every node's log (stderr) on the way out.
//!
//! Services come from `bash scripts/test.sh` (it exports `TEST_DATABASE_URL`
//! and installs `redis-server`); without them the tests fail and say so.

#![allow(dead_code)]

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header, encode};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use crate::certs::TestCerts;
pub use crate::sentinel::SentinelSet;

/// Shared by every node of a test and by the tokens the test mints.
pub const SECRET: &str = "cluster-test-secret-0123456789abcdef";
/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a node may take to answer `/readyz` 200 after it is spawned.
const NODE_START: Duration = Duration::from_secs(30);

pub const HOW_TO_RUN: &str = "run the suite with `bash scripts/test.sh` (it installs and starts \
     PostgreSQL and Redis and exports TEST_DATABASE_URL), or start them the same way by hand \
     (source scripts/services.sh; ensure_service_binaries; start_postgres) and export TEST_DATABASE_URL";

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/// A port that was free a moment ago on 127.0.0.1, picked at random BELOW
/// the kernel's ephemeral range when there is room: servers are restarted on
/// the same port after an outage, and while one is down an outgoing
/// connection (the tests poll `/readyz` constantly) could otherwise be given
/// its port by the kernel.
pub fn free_port() -> u16 {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let range = if lo >= 12_000 {
        Some((lo - 10_000, lo))
    } else if hi <= 55_000 {
        Some((hi + 1, 65_535))
    } else {
        None
    };
    if let Some((a, b)) = range {
        for _ in 0..100 {
            let port = rand::random_range(a..b) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Unique within this test process (nextest runs one test per process; the
/// pid makes names unique across processes).
fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Poll `check` every 100 ms until it returns `Some`, or panic after `within`
/// with `what` and the last observation.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last observation: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let text = strip_ansi(&text);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    let mut out = String::new();
    if from > 0 {
        out.push_str(&format!(
            "... ({from} earlier lines in {})\n",
            path.display()
        ));
    }
    for l in &all[from..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn log_file(path: &Path) -> (Stdio, Stdio) {
    let f = File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let g = f.try_clone().unwrap();
    (Stdio::from(f), Stdio::from(g))
}

/// Run a short command (redis-cli, pg_isready, ...) with a bound; its stdout.
pub async fn run_cmd(program: &str, args: &[&str]) -> Result<String, String> {
    run_cmd_within(Duration::from_secs(10), program, args).await
}

/// [`run_cmd`] with its own time limit.
pub async fn run_cmd_within(
    within: Duration,
    program: &str,
    args: &[&str],
) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .map_err(|_| format!("{program} {args:?} took longer than {within:?}"))?
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{program} {args:?} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// A child process that is killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process is running").id()
    }

    /// Send a signal by name (`TERM`, `INT`, ...) to this process only.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -{sig} {} ({})",
            self.pid(),
            self.name
        );
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether it has exited (and its status), without waiting.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait up to `within` for the process to exit; its status.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.try_exited() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

pub fn require_redis() {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("redis-cli")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "redis-server / redis-cli not found: the cluster tests start their own Redis; {HOW_TO_RUN}"
    );
}

/// One `redis-server` process of this test, restartable on the same port.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// Set: TLS only (`--port 0 --tls-port`), with these certificates.
    tls: Option<TestCerts>,
    proc: Option<Proc>,
}

impl RedisServer {
    /// Start on a free port with `dir` as its working directory (created).
    pub async fn start(dir: &Path, extra: &[&str]) -> RedisServer {
        Self::start_with(dir, extra, None).await
    }

    /// Start one that speaks TLS only: a plain-text client is refused.
    pub async fn start_tls(dir: &Path, certs: &TestCerts) -> RedisServer {
        Self::start_with(dir, &[], Some(certs.clone())).await
    }

    async fn start_with(dir: &Path, extra: &[&str], tls: Option<TestCerts>) -> RedisServer {
        std::fs::create_dir_all(dir).unwrap();
        let mut last_err = String::new();
        for _ in 0..3 {
            let mut r = RedisServer {
                port: free_port(),
                dir: dir.to_owned(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                tls: tls.clone(),
                proc: None,
            };
            match r.spawn().await {
                Ok(()) => return r,
                Err(e) => last_err = e,
            }
        }
        panic!("redis-server did not start: {last_err}");
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.current_dir(&self.dir);
        match &self.tls {
            None => cmd.args(["--port", &self.port.to_string()]),
            Some(certs) => cmd
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args(["--tls-cert-file", &certs.cert.display().to_string()])
                .args(["--tls-key-file", &certs.key.display().to_string()])
                .args(["--tls-ca-cert-file", &certs.ca.display().to_string()])
                .args(["--tls-auth-clients", "no"]),
        };
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--dir", &self.dir.display().to_string()])
            .args(["--logfile", "redis.log"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn(&format!("redis:{}", self.port), &mut cmd);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = proc.try_exited() {
                return Err(format!(
                    "redis-server on port {} exited ({status}):\n{}",
                    self.port,
                    tail(&self.dir.join("redis.log"), 20)
                ));
            }
            if self.cli(&["ping"]).await.is_ok_and(|o| o.trim() == "PONG") {
                self.proc = Some(proc);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server on port {} does not answer PING:\n{}",
                    self.port,
                    tail(&self.dir.join("redis.log"), 20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Stop it abruptly (SIGKILL, as a crash; nothing is persisted).
    pub async fn kill(&mut self) {
        let mut p = self.proc.take().expect("redis is running");
        p.kill9();
    }

    /// Start it again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.proc.is_none(), "redis is still running");
        self.spawn().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// `redis-cli -p PORT args...`, trimmed stdout.
    pub async fn cli(&self, args: &[&str]) -> Result<String, String> {
        let port = self.port.to_string();
        let ca = self.tls.as_ref().map(|c| c.ca.display().to_string());
        let mut all = vec!["-h", "127.0.0.1", "-p", &port];
        if let Some(ca) = &ca {
            all.extend(["--tls", "--cacert", ca.as_str()]);
        }
        all.extend_from_slice(args);
        run_cmd("redis-cli", &all)
            .await
            .map(|s| s.trim().to_owned())
    }

    /// `PUBSUB NUMSUB channel` (or `SHARDNUMSUB` with `sharded`).
    pub async fn numsub(&self, channel: &str, sharded: bool) -> Result<i64, String> {
        let sub = if sharded { "SHARDNUMSUB" } else { "NUMSUB" };
        let out = self.cli(&["PUBSUB", sub, channel]).await?;
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        match lines.as_slice() {
            [name, n] if *name == channel => n
                .parse()
                .map_err(|_| format!("PUBSUB {sub} answered {out:?}")),
            _ => Err(format!("PUBSUB {sub} {channel} answered {out:?}")),
        }
    }
}

/// Three masters, no replicas, for sharded pub/sub.
pub struct RedisCluster {
    pub masters: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start(dir: &Path) -> RedisCluster {
        let mut masters = Vec::new();
        for i in 0..3 {
            masters.push(
                RedisServer::start(
                    &dir.join(format!("redis-cluster-{i}")),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                )
                .await,
            );
        }
        let addrs: Vec<String> = masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        // It waits for the nodes to agree ("Waiting for the cluster to
        // join", polled every second): several seconds on a loaded machine.
        run_cmd_within(Duration::from_secs(60), "redis-cli", &args)
            .await
            .unwrap_or_else(|e| panic!("redis-cli --cluster create: {e}"));
        let cluster = RedisCluster { masters };
        for m in &cluster.masters {
            eventually(Duration::from_secs(20), "cluster_state:ok", || async {
                let info = m.cli(&["cluster", "info"]).await?;
                if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                    Ok(())
                } else {
                    Err(info)
                }
            })
            .await;
        }
        cluster
    }

    /// Every master as `host:port`.
    pub fn addrs(&self) -> Vec<String> {
        self.masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect()
    }

    /// The master that owns `key`'s hash slot.
    pub async fn owner_of(&self, key: &str) -> &RedisServer {
        let slot: u16 = self.masters[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .await
            .unwrap()
            .parse()
            .unwrap();
        let nodes = self.masters[0].cli(&["CLUSTER", "NODES"]).await.unwrap();
        // <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") {
                continue;
            }
            let owns = f[8..].iter().any(|range| {
                if range.starts_with('[') {
                    return false; // migrating/importing marker
                }
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                let (a, b): (u16, u16) = (a.parse().unwrap(), b.parse().unwrap());
                (a..=b).contains(&slot)
            });
            if owns {
                let port: u16 = f[1]
                    .split('@')
                    .next()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("odd CLUSTER NODES line {line}"));
                return self
                    .masters
                    .iter()
                    .find(|m| m.port == port)
                    .unwrap_or_else(|| panic!("slot {slot} is served by unknown port {port}"));
            }
        }
        panic!("no master owns slot {slot} of {key}:\n{nodes}");
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

fn test_database_url() -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if u.starts_with("postgres") => u,
        Ok(u) => panic!(
            "TEST_DATABASE_URL={u:?} is not a PostgreSQL URL: cluster mode needs PostgreSQL; {HOW_TO_RUN}"
        ),
        Err(_) => panic!(
            "TEST_DATABASE_URL is not set: the cluster tests need a PostgreSQL server; {HOW_TO_RUN}"
        ),
    }
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

/// A database created for one test; dropped (FORCE) when this is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
    drop_on_exit: bool,
}

impl TestDb {
    pub async fn create(admin_url: &str, drop_on_exit: bool) -> TestDb {
        // Pids repeat across runs against one long-lived server: add the clock.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let name = format!("cluster_{}_{}_{nanos}", std::process::id(), unique());
        let admin = Database::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {admin_url}: {e}; {HOW_TO_RUN}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = admin.close().await;
        TestDb {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
            drop_on_exit,
        }
    }

    /// Run one SQL statement that returns a single `id` column.
    pub async fn insert_returning_id(&self, sql: &str) -> i64 {
        let db = Database::connect(&self.url).await.expect("connect test db");
        let row = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .expect("a row");
        let id: i64 = row.try_get("", "id").expect("an id column");
        let _ = db.close().await;
        id
    }

    /// Insert a public room (there is no room-creation API yet); its id.
    pub async fn insert_room(&self, name: &str) -> i64 {
        self.insert_returning_id(&format!(
            "INSERT INTO rooms (name, description, is_private, last_seq, created_at) \
             VALUES ('{name}', '', false, 0, now()) RETURNING id"
        ))
        .await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.drop_on_exit {
            return;
        }
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a runtime of our own on another thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    if let Ok(db) = Database::connect(&admin).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = db.close().await;
                    }
                })
                .await;
            });
        })
        .join();
    }
}

fn pg_bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|b| b.join("initdb").exists() && b.join("postgres").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!("no PostgreSQL binaries under /usr/lib/postgresql/*/bin; {HOW_TO_RUN}")
    })
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) => (u, g),
        _ => panic!("there is no `postgres` system user to run PostgreSQL as; {HOW_TO_RUN}"),
    }
}

/// A PostgreSQL cluster of this test only (initdb'd in its temp dir), so the
/// test can stop it and start it again on the same port. The postmaster runs
/// as the `postgres` user (it refuses root) and is a direct child.
pub struct PgServer {
    pub port: u16,
    /// Set: `ssl=on`, and pg_hba.conf takes TLS connections only.
    tls: Option<TestCerts>,
    dir: PathBuf,
    bin: PathBuf,
    uid: u32,
    gid: u32,
    proc: Option<Proc>,
}

impl PgServer {
    pub async fn start(dir: &Path) -> PgServer {
        Self::start_with(dir, None).await
    }

    /// One with `ssl=on` that refuses connections without TLS.
    pub async fn start_tls(dir: &Path, certs: &TestCerts) -> PgServer {
        Self::start_with(dir, Some(certs)).await
    }

    async fn start_with(dir: &Path, tls: Option<&TestCerts>) -> PgServer {
        let bin = pg_bin_dir();
        let (uid, gid) = postgres_ids();
        std::fs::create_dir_all(dir).unwrap();
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
        let out = Command::new(bin.join("initdb"))
            .current_dir(dir)
            .uid(uid)
            .gid(gid)
            .args(["-D", "data", "-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(certs) = tls {
            enable_ssl(&dir.join("data"), certs, uid, gid);
        }
        let mut last = String::new();
        for _ in 0..3 {
            let mut pg = PgServer {
                tls: tls.cloned(),
                port: free_port(),
                dir: dir.to_owned(),
                bin: bin.clone(),
                uid,
                gid,
                proc: None,
            };
            match pg.spawn().await {
                Ok(()) => return pg,
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("postgres.log");
        let (out, err) = log_file(&log);
        std::os::unix::fs::chown(&log, Some(self.uid), Some(self.gid)).unwrap();
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.current_dir(&self.dir)
            .uid(self.uid)
            .gid(self.gid)
            .args(["-D", "data", "-p", &self.port.to_string()])
            .args(["-k", &self.dir.display().to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=100"])
            .stdout(out)
            .stderr(err);
        let mut proc = Proc::spawn(&format!("postgres:{}", self.port), &mut cmd);
        let deadline = Instant::now() + Duration::from_secs(20);
        let isready = self.bin.join("pg_isready").display().to_string();
        let port = self.port.to_string();
        loop {
            if let Some(status) = proc.try_exited() {
                return Err(format!("postgres exited ({status}):\n{}", tail(&log, 20)));
            }
            if run_cmd(&isready, &["-h", "127.0.0.1", "-p", &port])
                .await
                .is_ok()
            {
                self.proc = Some(proc);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("postgres is not ready:\n{}", tail(&log, 20)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn admin_url(&self) -> String {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        match &self.tls {
            None => url,
            Some(certs) => format!(
                "{url}?sslmode=verify-full&sslrootcert={}",
                certs.ca.display()
            ),
        }
    }

    /// Fast shutdown (SIGINT to the postmaster), waiting until it has exited.
    pub async fn stop(&mut self) {
        let mut p = self.proc.take().expect("postgres is running");
        p.signal("INT");
        if p.wait_exit(Duration::from_secs(15)).await.is_none() {
            panic!("postgres did not stop within 15 s after SIGINT");
        }
    }

    /// Start it again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.proc.is_none(), "postgres is still running");
        self.spawn().await.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// `ssl=on` with the test's certificate (the key readable by `postgres`
/// only, as PostgreSQL demands), and only TLS connections let in.
fn enable_ssl(data: &Path, certs: &TestCerts, uid: u32, gid: u32) {
    for (from, to) in [(&certs.cert, "server.crt"), (&certs.key, "server.key")] {
        let dest = data.join(to);
        std::fs::copy(from, &dest).unwrap();
        std::os::unix::fs::chown(&dest, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nssl = on\n");
    std::fs::write(&conf, text).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
    )
    .unwrap();
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Immediate shutdown (SIGQUIT) lets the postmaster take its children down.
        if let Some(mut p) = self.proc.take() {
            p.signal("QUIT");
            for _ in 0..100 {
                if p.try_exited().is_some() {
                    p.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Gateway nodes
// ---------------------------------------------------------------------------

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
        let p = self.proc.as_mut().expect("node is running");
        p.signal("TERM");
        let status = p
            .wait_exit(within)
            .await
            .unwrap_or_else(|| panic!("node {} did not exit within {within:?}", self.name));
        self.proc = None;
        status
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

// ---------------------------------------------------------------------------
// A cluster: backends + nodes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisMode {
    /// One `redis-server`, plain pub/sub.
    Single,
    /// Three masters, sharded pub/sub.
    Cluster,
    /// One `redis-server` that speaks TLS only (`rediss://`, the CA in
    /// `CHAT__REDIS__TLS_CA_FILE`).
    Tls,
    /// A primary, a replica and a Sentinel watching them (`redis-sentinel://`).
    Sentinel,
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub nodes: usize,
    pub redis: RedisMode,
    /// A PostgreSQL server of the test's own (to stop it), instead of `TEST_DATABASE_URL`'s.
    pub own_postgres: bool,
    /// Make that server take TLS connections only (`sslmode=verify-full`).
    pub postgres_tls: bool,
    /// `CHAT__PRESENCE__TTL_SECS`; None keeps the default.
    pub presence_ttl_secs: Option<u64>,
    /// `CHAT__REDIS__KEY_PREFIX`; None keeps the default (`chat`).
    pub key_prefix: Option<String>,
}

impl Opts {
    pub fn nodes(n: usize) -> Opts {
        Opts {
            nodes: n,
            redis: RedisMode::Single,
            own_postgres: false,
            postgres_tls: false,
            presence_ttl_secs: None,
            key_prefix: None,
        }
    }
}

/// A user the test minted a token for.
#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub token: String,
}

impl User {
    /// As in `online_users` / `user_joined`.
    pub fn public(&self) -> Value {
        json!({"id": self.id, "username": self.username, "nickname": self.nickname})
    }
}

/// Nodes first: fields drop in order, so nodes die before their backends.
pub struct Cluster {
    pub nodes: Vec<GatewayNode>,
    pub redis: Option<RedisServer>,
    pub redis_cluster: Option<RedisCluster>,
    pub sentinel: Option<SentinelSet>,
    pub db: TestDb,
    pub pg: Option<PgServer>,
    pub dir: TempDir,
    pub prefix: String,
    pub opts: Opts,
    next_user: AtomicI64,
    started: std::time::Instant,
}

const NODE_NAMES: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

impl Cluster {
    pub async fn start(opts: Opts) -> Cluster {
        let started = std::time::Instant::now();
        require_redis();
        let dir = tempfile::Builder::new()
            .prefix("chat-cluster-")
            .tempdir()
            .expect("tempdir");
        // The postgres user must be able to reach its directory inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

        let certs = (opts.postgres_tls || opts.redis == RedisMode::Tls)
            .then(|| TestCerts::make(&dir.path().join("certs")));
        let (pg, db) = if opts.own_postgres || opts.postgres_tls {
            let pg_dir = dir.path().join("pg");
            let pg = match &certs {
                Some(certs) if opts.postgres_tls => PgServer::start_tls(&pg_dir, certs).await,
                _ => PgServer::start(&pg_dir).await,
            };
            let db = TestDb::create(&pg.admin_url(), false).await;
            (Some(pg), db)
        } else {
            (None, TestDb::create(&test_database_url(), true).await)
        };

        let mut sentinel = None;
        let (redis, redis_cluster, redis_env) = match opts.redis {
            RedisMode::Single => {
                let r = RedisServer::start(&dir.path().join("redis"), &[]).await;
                let env = vec![("CHAT__REDIS__URL".to_owned(), r.url())];
                (Some(r), None, env)
            }
            RedisMode::Tls => {
                let certs = certs.as_ref().expect("made above");
                let r = RedisServer::start_tls(&dir.path().join("redis"), certs).await;
                let env = vec![
                    ("CHAT__REDIS__URL".to_owned(), r.url()),
                    (
                        "CHAT__REDIS__TLS_CA_FILE".to_owned(),
                        certs.ca.display().to_string(),
                    ),
                ];
                (Some(r), None, env)
            }
            RedisMode::Sentinel => {
                let set = SentinelSet::start(&dir.path().join("sentinel")).await;
                let env = vec![("CHAT__REDIS__URL".to_owned(), set.url())];
                sentinel = Some(set);
                (None, None, env)
            }
            RedisMode::Cluster => {
                let c = RedisCluster::start(dir.path()).await;
                let env = vec![
                    ("CHAT__REDIS__URL".to_owned(), redis_cluster_url(&c.addrs())),
                    ("CHAT__REDIS__SHARDED_PUBSUB".to_owned(), "true".to_owned()),
                ];
                (None, Some(c), env)
            }
        };

        let mut env = vec![
            ("CHAT__DATABASE__URL".to_owned(), db.url.clone()),
            ("CHAT__AUTH__JWT_SECRET".to_owned(), SECRET.to_owned()),
            (
                "CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS".to_owned(),
                "3".to_owned(),
            ),
        ];
        env.extend(redis_env);
        if let Some(ttl) = opts.presence_ttl_secs {
            env.push(("CHAT__PRESENCE__TTL_SECS".to_owned(), ttl.to_string()));
        }
        if let Some(p) = &opts.key_prefix {
            env.push(("CHAT__REDIS__KEY_PREFIX".to_owned(), p.clone()));
        }

        let mut cluster = Cluster {
            nodes: Vec::new(),
            redis,
            redis_cluster,
            sentinel,
            db,
            pg,
            prefix: opts.key_prefix.clone().unwrap_or_else(|| "chat".to_owned()),
            opts: opts.clone(),
            dir,
            next_user: AtomicI64::new(1),
            started,
        };
        // Nodes start concurrently (migrations are serialised by the gateway's
        // advisory lock). `cluster` is dropped on panic, killing what started.
        let starts = (0..opts.nodes).map(|i| {
            let dir = cluster.dir.path().to_owned();
            let env = env.clone();
            async move { GatewayNode::start(NODE_NAMES[i], &dir, &env).await }
        });
        let handles: Vec<_> = starts.map(tokio::spawn).collect();
        let mut failure = None;
        for h in handles {
            match h.await {
                Ok(node) => cluster.nodes.push(node),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            // A spawned start panicked; its node was killed by its guard.
            std::panic::resume_unwind(e.into_panic());
        }
        eprintln!(
            "[harness] {} node(s) ready in {:.1?} (dir {})",
            cluster.nodes.len(),
            cluster.started.elapsed(),
            cluster.dir.path().display()
        );
        cluster
    }

    pub fn node(&self, i: usize) -> &GatewayNode {
        &self.nodes[i]
    }

    /// The single Redis (panics in Redis Cluster mode).
    pub fn redis(&self) -> &RedisServer {
        self.redis.as_ref().expect("single Redis mode")
    }

    pub fn redis_mut(&mut self) -> &mut RedisServer {
        self.redis.as_mut().expect("single Redis mode")
    }

    /// The room's pub/sub channel, `{prefix}:{room:N}`.
    pub fn room_channel(&self, room: i64) -> String {
        format!("{}:{{room:{room}}}", self.prefix)
    }

    /// A new user (next id) with a token minted with the shared secret.
    pub fn user(&self, username: &str) -> User {
        let id = self.next_user.fetch_add(1, Ordering::Relaxed);
        let mut nickname = username.to_owned();
        if let Some(f) = nickname.get_mut(0..1) {
            f.make_ascii_uppercase();
        }
        let token = mint(&json!({
            "sub": id.to_string(),
            "exp": now_secs() + 3600,
            "username": username,
            "nickname": nickname,
        }));
        User {
            id,
            username: username.to_owned(),
            nickname,
            token,
        }
    }

    /// Connect `user` to node `i` in `room`; the client and the `online_users` frame.
    pub async fn connect(&self, i: usize, user: &User, room: i64) -> (WsClient, Value) {
        let node = &self.nodes[i];
        let url = format!(
            "ws://127.0.0.1:{}/ws?room_id={room}&token={}",
            node.port, user.token
        );
        let label = format!("{}@{}", user.username, node.name);
        let mut c = match WsClient::connect(&url, &label).await {
            Ok(c) => c,
            Err((status, body)) => panic!("{label}: upgrade refused: {status} {body}"),
        };
        let online = c.recv_json().await;
        assert_eq!(
            (online["type"].as_str(), online["room_id"].as_i64()),
            (Some("online_users"), Some(room)),
            "{label}: first frame after connecting: {online}"
        );
        (c, online)
    }

    /// GET `path` on node `i` as `user`: the status and the JSON body
    /// (`Null` when it is not JSON).
    pub async fn get_json(&self, i: usize, user: &User, path: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .get(self.node(i).url(path))
            .bearer_auth(&user.token)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on node {i}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// The ids in an `online_users` frame, in the order sent.
    pub fn online_ids(frame: &Value) -> Vec<i64> {
        frame["data"]["users"]
            .as_array()
            .unwrap_or_else(|| panic!("not an online_users frame: {frame}"))
            .iter()
            .map(|u| u["id"].as_i64().unwrap())
            .collect()
    }

    /// Subscribers of the room's channel on the single Redis.
    pub async fn numsub(&self, room: i64) -> i64 {
        self.redis()
            .numsub(&self.room_channel(room), false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Poll until the room channel has `n` subscribers (single Redis).
    pub async fn wait_numsub(&self, room: i64, n: i64, within: Duration) {
        let channel = self.room_channel(room);
        eventually(
            within,
            &format!("PUBSUB NUMSUB {channel} == {n}"),
            || async {
                match self.redis().numsub(&channel, false).await {
                    Ok(got) if got == n => Ok(()),
                    Ok(got) => Err(format!("{got}")),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }

    /// Print how long the test took (shown by nextest for failures, or with --no-capture).
    pub fn report(&self, what: &str) {
        eprintln!("[harness] {what} after {:.1?}", self.started.elapsed());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n===== test failed after {:.1?}; node logs (temp dir {}) =====",
                self.started.elapsed(),
                self.dir.path().display()
            );
            for n in &self.nodes {
                eprintln!("----- node {} (port {}) -----", n.name, n.port);
                eprintln!("{}", n.log_tail(150));
            }
            if let Some(r) = &self.redis {
                eprintln!("----- redis (port {}) -----", r.port);
                eprintln!("{}", tail(&r.log_path(), 20));
            }
            if let Some(set) = &self.sentinel {
                eprintln!("----- sentinel (port {}) -----", set.sentinel_port);
                eprintln!("{}", set.log_tail(30));
            }
            if let Some(pg) = &self.pg {
                eprintln!("----- postgres (port {}) -----", pg.port);
                eprintln!("{}", tail(&pg.dir.join("postgres.log"), 20));
            }
            eprintln!("===== end of node logs =====\n");
        }
    }
}

/// The `CHAT__REDIS__URL` for a Redis Cluster: fred's clustered URL form,
/// `redis-cluster://host1:port1?node=host2:port2&node=host3:port3`.
pub fn redis_cluster_url(addrs: &[String]) -> String {
    let mut url = format!("redis-cluster://{}", addrs[0]);
    for (i, a) in addrs[1..].iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str("node=");
        url.push_str(a);
    }
    url
}

/// Sign claims with the shared secret (HS256).
pub fn mint(claims: &Value) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client whose halves can be used at the same time (send while reading).
pub struct WsClient {
    pub label: String,
    pub tx: SplitSink<Ws, Message>,
    pub rx: FrameReader,
}

/// The reading half: JSON frames, with pings/pongs skipped.
pub struct FrameReader {
    pub label: String,
    stream: SplitStream<Ws>,
}

impl WsClient {
    pub async fn connect(url: &str, label: &str) -> Result<WsClient, (u16, String)> {
        use tokio_tungstenite::tungstenite::Error;
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url)).await {
            Err(_) => panic!("{label}: connecting to {url} timed out"),
            Ok(Ok((stream, _))) => {
                let (tx, stream) = stream.split();
                Ok(WsClient {
                    label: label.to_owned(),
                    tx,
                    rx: FrameReader {
                        label: label.to_owned(),
                        stream,
                    },
                })
            }
            Ok(Err(Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((status, body))
            }
            Ok(Err(e)) => panic!("{label}: connect {url}: {e}"),
        }
    }

    pub async fn send_json(&mut self, v: Value) {
        send_on(&mut self.tx, &self.label, v).await;
    }

    /// `{"type":"message","room_id":room,"content":content,"client_msg_id":cmid}`.
    pub async fn send_message(&mut self, room: i64, content: &str, cmid: &str) {
        self.send_json(
            json!({"type": "message", "room_id": room, "content": content, "client_msg_id": cmid}),
        )
        .await;
    }

    pub async fn recv_json(&mut self) -> Value {
        self.rx.recv_json().await
    }

    pub async fn recv_type(&mut self, ty: &str) -> Value {
        self.rx.recv_type(ty).await
    }

    /// Send a close frame and wait (bounded) for the server's: the gateway
    /// answers only after its cleanup (leaving rooms, presence, `user_left`).
    pub async fn close_and_wait(mut self) {
        let _ = self
            .tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let label = self.label.clone();
        let wait = async {
            loop {
                match self.rx.stream.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("{label}: the server did not answer the close in {WAIT:?}"));
    }
}

pub async fn send_on(tx: &mut SplitSink<Ws, Message>, label: &str, v: Value) {
    tx.send(Message::text(v.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{label}: send failed: {e}"));
}

impl FrameReader {
    /// The next JSON frame within `within`: `Err` on timeout, close or error.
    pub async fn next_within(&mut self, within: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(format!("no frame within {within:?}")),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Ok(serde_json::from_str(&t)
                        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {t}", self.label)));
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Close(f)))) => {
                    return Err(format!("connection closed by the server: {f:?}"));
                }
                Ok(Some(Ok(other))) => return Err(format!("unexpected frame {other:?}")),
                Ok(Some(Err(e))) => return Err(format!("read error: {e}")),
                Ok(None) => return Err("connection ended".into()),
            }
        }
    }

    /// The next JSON frame; panics after [`WAIT`] or on close.
    pub async fn recv_json(&mut self) -> Value {
        self.recv_json_within(WAIT).await
    }

    pub async fn recv_json_within(&mut self, within: Duration) -> Value {
        match self.next_within(within).await {
            Ok(v) => v,
            Err(e) => panic!("{}: expected a frame: {e}", self.label),
        }
    }

    /// Skip frames until one of type `ty`; an `error` frame fails the test.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = match self.next_within(left).await {
                Ok(v) => v,
                Err(e) => panic!("{}: waiting for a {ty} frame: {e}", self.label),
            };
            if v["type"] == ty {
                return v;
            }
            assert_ne!(
                v["type"], "error",
                "{}: unexpected error frame while waiting for {ty}: {v}",
                self.label
            );
        }
    }

    /// Skip frames until the server's close frame; its code (None: no code,
    /// or the connection ended without a close frame).
    pub async fn recv_close(&mut self, within: Duration) -> Option<u16> {
        let label = self.label.clone();
        let wait = async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return None,
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("{label}: no close frame within {within:?}"))
    }

    /// Assert that nothing but control frames arrives for `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        match self.next_within(within).await {
            Err(e) if e.starts_with("no frame") => {}
            Ok(v) => panic!("{}: expected silence, got {v}", self.label),
            Err(e) => panic!("{}: expected silence, got {e}", self.label),
        }
    }
}
