//! The Redis servers a test drives: one `redis-server` (plain or TLS only),
//! restartable on the same port so a test can take the bus away and bring it
//! back, and a three-master Redis Cluster for sharded pub/sub.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

use super::{HOW_TO_RUN, Proc, TestCerts, eventually, free_port, run_cmd, run_cmd_within, tail};

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
