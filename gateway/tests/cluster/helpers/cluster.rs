//! A cluster: the backends of one test (Redis in the mode asked for,
//! PostgreSQL) and its gateway nodes, owned by [`Cluster`] so they all stop
//! with it (nodes before backends), with each one's log printed when the
//! test fails.

use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tempfile::TempDir;

use super::postgres::test_database_url;
use super::{
    GatewayNode, PgServer, RedisCluster, RedisServer, SECRET, SentinelSet, TestCerts, TestDb, User,
    WsClient, eventually, mint, now_secs, redis_cluster_url, require_redis, tail,
};

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

    /// A new user per name, in order ([`Cluster::user`]).
    pub fn users<const N: usize>(&self, usernames: [&str; N]) -> [User; N] {
        usernames.map(|name| self.user(name))
    }

    /// Connect `user` to node `i` in `room`; the client and the `online_users` frame.
    pub async fn connect(&self, i: usize, user: &User, room: i64) -> (WsClient, Value) {
        self.connect_with(i, user, room, "").await
    }

    /// Connect `user` to node `i` in `room`, resuming after `since_seq`.
    pub async fn resume(
        &self,
        i: usize,
        user: &User,
        room: i64,
        since_seq: i64,
    ) -> (WsClient, Value) {
        self.connect_with(i, user, room, &format!("&since_seq={since_seq}"))
            .await
    }

    async fn connect_with(
        &self,
        i: usize,
        user: &User,
        room: i64,
        query: &str,
    ) -> (WsClient, Value) {
        let node = &self.nodes[i];
        let url = format!(
            "ws://127.0.0.1:{}/ws?room_id={room}&token={}{query}",
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
        self.rest(i, user, reqwest::Method::GET, path, None).await
    }

    /// `method path` on node `i` as `user`, with `body` as JSON if any: the
    /// status and the JSON body (`Null` when it is not JSON).
    pub async fn rest(
        &self,
        i: usize,
        user: &User,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method.clone(), self.node(i).url(path))
            .bearer_auth(&user.token)
            .timeout(Duration::from_secs(20));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on node {i}: {e}"));
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
