//! The `gateway` binary itself, black-box: `gateway migrate` runs
//! the migrations and exits without serving; `CHAT__LOG__FORMAT=json` makes
//! every log line a JSON object; a node without a JWT secret warns that
//! tokens will not survive a restart; `gateway token` mints a token the
//! node accepts; and no password or token ever reaches
//! the logs, even at debug (and trace) level. Each test runs the built binary on a fresh
//! SQLite file in a temporary directory and reads what it wrote to
//! stdout/stderr. Needs nothing but the binary.

use gateway::store::Store;
use serde_json::{Value, json};
use shared::ids::RoomId;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "binary-test-secret-0123456789";
const START: Duration = Duration::from_secs(60);

#[path = "common/free_port.rs"]
mod free_port;
use free_port::free_port;

/// A `gateway` process writing stdout and stderr to one file; killed on drop.
struct Gateway {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// The binary with only the given `CHAT__*` settings (none inherited from
/// the test's environment), a fresh SQLite file in `dir`, and a free port.
fn command(dir: &Path, port: u16, env: &[(&str, &str)], args: &[&str]) -> (Command, PathBuf) {
    let log = dir.join(format!("gateway-{port}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CHAT__") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let db = format!("sqlite://{}/chat.db?mode=rwc", dir.display());
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env("CHAT__SERVER__HOST", "127.0.0.1")
        .env("CHAT__SERVER__PORT", port.to_string())
        .env("CHAT__SERVER__WORKERS", "1")
        .env("CHAT__DATABASE__URL", db)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    (cmd, log)
}

impl Gateway {
    /// Start serving and wait for `/readyz` = 200.
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Gateway {
        Self::start_with(dir, env, |_| {}).await
    }

    /// [`start`](Self::start) with the test's JWT secret set besides `env`.
    async fn start_with_secret(dir: &Path, env: &[(&str, &str)]) -> Gateway {
        let env = [&[("CHAT__AUTH__JWT_SECRET", SECRET)], env].concat();
        Self::start(dir, &env).await
    }

    /// [`start`](Self::start), with the command adjusted first.
    async fn start_with(
        dir: &Path,
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Gateway {
        let port = free_port();
        let (mut cmd, log) = command(dir, port, env, &[]);
        adjust(&mut cmd);
        let mut g = Gateway {
            child: cmd.spawn().expect("start the gateway binary"),
            port,
            log,
        };
        let deadline = Instant::now() + START;
        loop {
            if let Ok(Some(status)) = g.child.try_wait() {
                panic!("the gateway exited ({status}):\n{}", g.output());
            }
            if let Ok(r) = reqwest::get(g.url("/readyz")).await
                && r.status() == 200
            {
                return g;
            }
            assert!(Instant::now() < deadline, "not ready:\n{}", g.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// POST `body` as JSON to `path`.
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sigterm(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGTERM, wait for the exit (so every log line is written), the output.
    async fn stop(mut self) -> String {
        self.sigterm();
        let status = wait(&mut self.child, Duration::from_secs(20)).await;
        assert!(
            status.success(),
            "exit after SIGTERM: {status}\n{}",
            self.output()
        );
        self.output()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("still running after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn migrate_runs_the_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    for run in ["first", "second (nothing left to do)"] {
        let (mut cmd, log) = command(
            dir.path(),
            port,
            &[("CHAT__AUTH__JWT_SECRET", SECRET)],
            &["migrate"],
        );
        let mut child = cmd.spawn().unwrap();
        let status = wait(&mut child, START).await;
        let out = std::fs::read_to_string(&log).unwrap();
        assert!(status.success(), "{run} `gateway migrate`: {status}\n{out}");
        assert!(out.contains("migrations applied"), "{run}: {out}");
        // It never served: it did not announce a listener, and nothing
        // listens on the port it was given.
        assert!(!out.contains("gateway listening"), "{run}: {out}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{run}: something listens on the port `gateway migrate` was given"
        );
    }
    // The schema is there, with the default room the migrations create.
    let url = format!("sqlite://{}/chat.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url, 1).await.unwrap();
    let general = store.find_room(RoomId(1)).await.unwrap().expect("room 1");
    assert_eq!(general.name, "general");
}

/// `gateway token` prints a token the nodes that share its secret accept:
/// a user first seen is created from its claims. Without a secret it fails,
/// saying why, and prints nothing.
#[tokio::test]
async fn the_token_subcommand_mints_what_the_node_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start_with_secret(dir.path(), &[]).await;
    let mint = |env: &[(&str, &str)]| {
        let (mut cmd, log) = command(
            dir.path(),
            free_port(),
            env,
            &[
                "token",
                "--sub",
                "4242",
                "--username",
                "minted",
                "--nickname",
                "Minted",
            ],
        );
        let out = cmd.stdout(Stdio::piped()).output().unwrap();
        let said = std::fs::read_to_string(log).unwrap_or_default();
        (out.status, String::from_utf8(out.stdout).unwrap(), said)
    };
    let (status, token, said) = mint(&[("CHAT__AUTH__JWT_SECRET", SECRET)]);
    assert!(status.success(), "{said}");
    let me: Value = reqwest::Client::new()
        .get(g.url("/api/users/me"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&me["id"], &me["username"], &me["nickname"]),
        (&json!(4242), &json!("minted"), &json!("Minted")),
        "{me}"
    );
    let (status, token, said) = mint(&[]);
    assert!(!status.success());
    assert!(token.is_empty(), "{token}");
    assert!(said.contains("CHAT__AUTH__JWT_SECRET is not set"), "{said}");
    g.stop().await;
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start_with_secret(dir.path(), &[("CHAT__LOG__FORMAT", "json")]).await;
    reqwest::get(g.url("/healthz")).await.unwrap();
    let out = g.stop().await;
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "start and stop are logged: {out}");
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string() && v["message"].is_string(),
            "a JSON log line has timestamp, level and message: {line}"
        );
    }
    // With a secret set there is no warning about a random one.
    assert!(!out.contains("JWT_SECRET is not set"), "{out}");
}

#[tokio::test]
async fn without_a_jwt_secret_the_node_warns() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(dir.path(), &[("CHAT__LOG__FORMAT", "json")]).await;
    let out = g.stop().await;
    let warning = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("JWT_SECRET is not set"))
        })
        .unwrap_or_else(|| panic!("no warning about the missing secret:\n{out}"));
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert!(
        warning["message"].as_str().unwrap().contains("restart"),
        "the warning says tokens will not survive a restart: {warning}"
    );
}

#[tokio::test]
async fn no_password_or_token_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    // The most verbose level (every crate's debug and trace events).
    let g = Gateway::start_with_secret(dir.path(), &[("CHAT__LOG__LEVEL", "trace")]).await;
    let password = "Pw-in-no-log-7f3a9c";
    let wrong = "Wrong-pw-in-no-log-1b2c";
    let creds = json!({"username": "secretive", "password": password});
    let r = g.post("/api/auth/register", &creds).await;
    assert_eq!(r.status(), 201);
    let r = g.post("/api/auth/login", &creds).await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad = json!({"username": "secretive", "password": wrong});
    let r = g.post("/api/auth/login", &bad).await;
    assert_eq!(r.status(), 401);

    // The token in the query string (as browsers send it), then in a header.
    let ws = format!("ws://127.0.0.1:{}/ws?room_id=1&token={token}", g.port);
    let (mut c, _) = tokio_tungstenite::connect_async(ws).await.expect("upgrade");
    use futures_util::{SinkExt, StreamExt};
    let hello = json!({"type": "message", "content": "hello", "client_msg_id": "m1"});
    c.send(tokio_tungstenite::tungstenite::Message::text(
        hello.to_string(),
    ))
    .await
    .unwrap();
    while let Some(Ok(m)) = c.next().await {
        if m.to_text().is_ok_and(|t| t.contains("\"message\"")) {
            break;
        }
    }
    c.close(None).await.unwrap();
    let r = reqwest::Client::new()
        .get(g.url("/api/rooms"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let out = g.stop().await;
    assert!(
        out.contains("DEBUG"),
        "debug logging was on (or this test proves nothing):\n{out}"
    );
    let signature = token.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("the password", password),
        ("a wrong password", wrong),
        ("the token", token.as_str()),
        ("the token's signature", signature),
        ("the JWT secret", SECRET),
    ] {
        assert!(!out.contains(secret), "{what} appears in the logs:\n{out}");
    }
}

/// A pod may start with a soft open-files limit of 1,024 (or a
/// shell's `ulimit -n 256`), and every connection is a descriptor. The node
/// raises its soft limit to the hard one at start, logs both, and warns
/// when they cannot hold `limits.max_connections` plus a margin.
#[tokio::test]
async fn the_open_files_limit_is_raised_to_the_hard_limit_and_reported() {
    use std::os::unix::process::CommandExt;
    fn nofile(soft: u64, hard: u64) -> impl FnOnce(&mut Command) {
        move |cmd: &mut Command| {
            // SAFETY: setrlimit is async-signal-safe; only the child's limits change.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: soft as libc::rlim_t,
                        rlim_max: hard as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
    }
    fn event(out: &str, message: &str) -> Option<Value> {
        out.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
    }
    let json = ("CHAT__LOG__FORMAT", "json");
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(dir.path(), &[json], nofile(256, 4096)).await;
    let out = g.stop().await;
    let limit = event(&out, "open-files limit").unwrap_or_else(|| panic!("not logged:\n{out}"));
    assert_eq!(
        (
            limit["soft"].as_u64(),
            limit["hard"].as_u64(),
            limit["raised_from"].as_u64()
        ),
        (Some(4096), Some(4096), Some(256))
    );
    let warning =
        event(&out, "the open-files limit is below").expect("4,096 cannot hold 10,000 connections");
    assert_eq!(warning["level"], "WARN");

    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(
        dir.path(),
        &[json, ("CHAT__LIMITS__MAX_CONNECTIONS", "100")],
        nofile(256, 512),
    )
    .await;
    let out = g.stop().await;
    assert_eq!(
        event(&out, "open-files limit").unwrap()["soft"].as_u64(),
        Some(512)
    );
    assert!(
        event(&out, "the open-files limit is below").is_none(),
        "512 holds 100 connections:\n{out}"
    );
}

/// A balancer notices a stopping node only after its next failed
/// health checks. With `server.lame_duck_secs`, `/readyz` fails at the stop
/// signal while upgrades are still taken for that long; then the drain
/// refuses them (503) and closes the connections (1012).
#[tokio::test]
async fn a_lame_duck_fails_readiness_first_and_keeps_taking_upgrades() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let env = [("CHAT__SERVER__LAME_DUCK_SECS", "3")];
    let mut g = Gateway::start_with_secret(dir.path(), &env).await;
    let credentials = json!({"username": "duck", "password": "correct horse battery"});
    let token: Value = g
        .post("/api/auth/register", &credentials)
        .await
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("a token").to_owned();
    let ws_url = format!("ws://127.0.0.1:{}/ws?token={token}", g.port);
    let (mut before, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();

    g.sigterm();
    let signalled = Instant::now();
    loop {
        let r = reqwest::get(g.url("/readyz")).await.unwrap();
        if r.status() == 503 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["checks"]["draining"], true, "{body}");
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(2),
            "/readyz still 200"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Lame duck: a new client still gets in, an open one stays.
    let (mut during, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("an upgrade during the lame-duck phase is taken");
    assert!(signalled.elapsed() < Duration::from_secs(3));
    let open = tokio::time::timeout(Duration::from_millis(300), before.next()).await;
    assert!(
        open.is_err() || matches!(open, Ok(Some(Ok(ref m))) if !m.is_close()),
        "closed during the lame-duck phase: {open:?}"
    );
    // Then the drain: upgrades refused, connections closed with 1012.
    let refused = loop {
        match tokio_tungstenite::connect_async(&ws_url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => break r.status().as_u16(),
            Err(e) => panic!("{e}"),
            Ok(_) => {}
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(8),
            "upgrades still taken"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused, 503);
    assert!(
        signalled.elapsed() >= Duration::from_millis(2900),
        "the drain began after {:?}",
        signalled.elapsed()
    );
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = during.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = m {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(1012));
    let status = wait(&mut g.child, Duration::from_secs(20)).await;
    assert!(status.success(), "{}", g.output());
}
