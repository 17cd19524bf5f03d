//! A Redis Sentinel set of one test: a primary, one replica of it, and one
//! Sentinel watching them (quorum 1, so it alone can fail over; a real
//! deployment runs three). The gateway finds the primary through the
//! Sentinel (`redis-sentinel://`), and a test kills the primary to see the
//! replica promoted.

use crate::helpers::{Proc, RedisServer, eventually, free_port, run_cmd, tail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// The name the Sentinel knows the primary by (`sentinelServiceName`).
pub const SERVICE: &str = "chat";

pub struct SentinelSet {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinel_port: u16,
    dir: PathBuf,
    sentinel: Option<Proc>,
}

impl SentinelSet {
    /// Start all three and wait until the Sentinel knows the replica (it
    /// can only promote one it has seen).
    pub async fn start(dir: &Path) -> SentinelSet {
        std::fs::create_dir_all(dir).unwrap();
        let primary = RedisServer::start(&dir.join("primary"), &[]).await;
        let primary_port = primary.port.to_string();
        let replica = RedisServer::start(
            &dir.join("replica"),
            &["--replicaof", "127.0.0.1", &primary_port],
        )
        .await;
        let sentinel_port = free_port();
        let conf = dir.join("sentinel.conf");
        // Sentinel rewrites its configuration file: it must be writable.
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndaemonize no\nlogfile {log}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {SERVICE} 1000\n\
                 sentinel failover-timeout {SERVICE} 10000\n",
                log = dir.join("sentinel.log").display(),
            ),
        )
        .unwrap();
        let mut cmd = Command::new("redis-server");
        cmd.arg(&conf)
            .arg("--sentinel")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = Proc::spawn(&format!("sentinel:{sentinel_port}"), &mut cmd);
        let set = SentinelSet {
            primary,
            replica,
            sentinel_port,
            dir: dir.to_owned(),
            sentinel: Some(proc),
        };
        eventually(
            Duration::from_secs(30),
            "the replica in sync and known to the Sentinel",
            || async {
                let link = set.replica.cli(&["INFO", "replication"]).await?;
                if !link.contains("master_link_status:up") {
                    return Err(format!("replica: {link}"));
                }
                let replicas = set.sentinel_cli(&["SENTINEL", "REPLICAS", SERVICE]).await?;
                if !replicas.contains(&set.replica.port.to_string()) {
                    return Err(format!("sentinel knows no replica yet: {replicas:?}"));
                }
                Ok(())
            },
        )
        .await;
        set
    }

    /// The gateway's `CHAT__REDIS__URL`.
    pub fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName={SERVICE}",
            self.sentinel_port
        )
    }

    pub async fn sentinel_cli(&self, args: &[&str]) -> Result<String, String> {
        let port = self.sentinel_port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port];
        all.extend_from_slice(args);
        run_cmd("redis-cli", &all)
            .await
            .map(|s| s.trim().to_owned())
    }

    /// The port the Sentinel names as the primary now.
    pub async fn primary_port(&self) -> Result<u16, String> {
        let out = self
            .sentinel_cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE])
            .await?;
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("SENTINEL GET-MASTER-ADDR-BY-NAME answered {out:?}"))
    }

    /// Kill the primary (SIGKILL, a crash) and wait until the Sentinel has
    /// promoted the replica, which then answers as a master. How long the
    /// failover took.
    pub async fn fail_over(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        self.primary.kill().await;
        let replica_port = self.replica.port;
        eventually(within, "the Sentinel to promote the replica", || async {
            match self.primary_port().await? {
                p if p == replica_port => {}
                p => return Err(format!("primary is still port {p}")),
            }
            let role = self.replica.cli(&["ROLE"]).await?;
            if role.lines().next() == Some("master") {
                Ok(())
            } else {
                Err(format!("replica's ROLE: {role:?}"))
            }
        })
        .await;
        started.elapsed()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.join("sentinel.log"), lines)
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        // The Sentinel first, so it does not watch its servers die.
        self.sentinel.take();
    }
}
