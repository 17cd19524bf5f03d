//! Settings: built-in defaults, then an optional TOML file (`--config FILE`),
//! then `CHAT__SECTION__KEY` environment variables. Every setting, its default
//! and its meaning is listed in the README's "Configuration" table, which
//! mirrors [`Settings::default`].

use config::{Config, Environment, File};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub ws: WsSettings,
    pub limits: LimitsSettings,
    pub presence: PresenceSettings,
    pub log: LogSettings,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// actix worker threads; 0 means one per core.
    pub workers: usize,
    /// Origins allowed to open `/ws` from a browser. Empty: same origin only
    /// (the Origin's host must equal the Host header). `*` allows every origin.
    /// Requests without an Origin header (non-browser clients) are allowed.
    /// In the environment: a comma-separated list.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub allowed_origins: Vec<String>,
    /// Load balancers and proxies (CIDRs, e.g. `10.0.0.0/8`, or single
    /// addresses) whose `X-Forwarded-For` names the client: from these peers
    /// the client address (per-IP limits, logs) is the right-most address of
    /// that header that is not itself a trusted proxy. Empty: the TCP peer is
    /// the client. In the environment: a comma-separated list.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub trusted_proxies: Vec<String>,
    /// How long a stopping node waits for its connections to close.
    pub shutdown_timeout_secs: u64,
    /// Lame duck: for this long after the stop signal `/readyz` answers 503
    /// (the balancer takes the node out) while requests and upgrades are
    /// still served; then the drain begins. 0: the drain begins at once.
    pub lame_duck_secs: u64,
    /// A stopping node closes its connections (1012) at random moments over
    /// this window, so their reconnects spread out. Below the shutdown timeout.
    pub drain_window_secs: u64,
    /// A second port, on the same host, that serves only `/metrics`,
    /// `/healthz` and `/readyz` (for a scraper kept off the public port).
    /// Unset: none; the main port serves them either way.
    pub admin_port: Option<u16>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://data/chat.db?mode=rwc` or `postgres://user:pass@host/db`.
    pub url: Secret,
    pub max_connections: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Unset: single node with the in-process bus and presence. Set: cluster
    /// mode. `redis://host:port`; `redis-cluster://host:port?node=host:port`
    /// for a Redis Cluster; `redis-sentinel://sentinel:26379?sentinelServiceName=NAME&node=sentinel2:26379`
    /// for a primary found through Sentinel. `rediss` instead of `redis`
    /// (`rediss://`, `rediss-cluster://`, `rediss-sentinel://`) speaks TLS.
    pub url: Option<Secret>,
    /// PEM file of the CA that signed Redis's certificate (a private CA);
    /// unset, a `rediss` URL is verified against the system's roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Use sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7) so a Redis Cluster
    /// carries each room's traffic on one shard instead of broadcasting it.
    pub sharded_pubsub: bool,
    /// Prefix of every key and channel, so several deployments can share a Redis.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: None,
            tls_ca_file: None,
            sharded_pubsub: false,
            key_prefix: "chat".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 key. Unset: a random key per start (tokens die with the process).
    pub jwt_secret: Option<Secret>,
    /// Lifetime of tokens issued by `/api/auth/*`.
    pub token_ttl_secs: u64,
    /// Clock skew tolerated on `exp`/`nbf`.
    pub leeway_secs: u64,
    /// The `iss` of the tokens this gateway issues; a token with this `iss`
    /// names a local user by id.
    pub issuer: String,
    /// Issuers whose tokens name users of their own: `(iss, sub)` is mapped
    /// to a local user (created on first sight). Tokens of any other issuer
    /// are refused. In the environment: a comma-separated list.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub external_issuers: Vec<String>,
    /// When set, every token must carry this `aud` (and issued tokens do).
    pub audience: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsSettings {
    pub ping_interval_secs: u64,
    /// A connection that sends nothing (not even a pong) for this long is dropped.
    pub client_timeout_secs: u64,
    /// A write to a client that takes longer than this drops the client.
    pub write_timeout_secs: u64,
    /// How far back (in messages) a resume or a gap fill reaches; further
    /// back, the client gets `recovery_partial` and reloads the history.
    pub recovery_window: u64,
    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it.
    pub compression: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// Upgrades beyond this many open connections get 503.
    pub max_connections: usize,
    /// Largest incoming frame (and fragmented message), bytes; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Longest chat message, in characters after trimming.
    pub max_content_chars: usize,
    /// Frames queued for one client before it is dropped as a slow consumer.
    pub outbound_queue: usize,
    /// Rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// Client frames per second per connection (token bucket); 0 turns the limit off.
    pub msg_rate: u32,
    /// Frames a connection may send in a burst above `msg_rate`. A client that
    /// keeps sending after this many consecutive refusals is disconnected (1008).
    pub msg_burst: u32,
    /// Open connections per user across the whole cluster (every node
    /// sharing the Redis; one node in the embedded mode); beyond it upgrades
    /// get 429.
    pub max_connections_per_user: usize,
    /// WebSocket upgrade attempts per second per client IP (burst: twice as
    /// many); 0 turns the limit off (load tests from one address).
    pub connect_rate_per_ip: u32,
    /// Frames of every kind (data, continuation, ping, pong, close) read per
    /// second per connection (burst: twice as many); past it the socket is
    /// read no faster. 0 turns the limit off (benchmarks).
    pub frame_rate: u32,
    /// Bytes read per second per connection (burst: twice as many, at least
    /// two largest frames); past it the socket is read no faster. 0: off.
    pub read_bytes_rate: u32,
    /// Registrations and logins per second per client address (burst: twice
    /// as many); beyond it 429. 0 turns the limit off (tests, load tests).
    pub auth_rate_per_ip: u32,
    /// REST writes other than messages (rooms, memberships, profile) per
    /// second per user (burst: four times as many); beyond it 429. 0: off.
    pub rest_write_rate: u32,
    /// Rooms one user may own (create); beyond it 403 `too_many_rooms`.
    pub max_rooms_per_user: usize,
    /// How long after sending its author may edit a message; later edits get
    /// 403 `edit_window_passed`. 0: messages cannot be edited.
    pub edit_window_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceSettings {
    /// A presence entry not refreshed for this long is considered gone.
    pub ttl_secs: u64,
    /// A room with more members than this on a node gets its presence
    /// changes there as one `presence_batch` every `batch_ms` instead of a
    /// `user_joined` / `user_left` per user (which is quadratic in a storm).
    pub large_room: usize,
    pub batch_ms: u64,
    /// `online_users` lists at most this many users (with `online_count`).
    pub snapshot_max_users: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter (`info`, `gateway=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: 0,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            shutdown_timeout_secs: 10,
            lame_duck_secs: 0,
            drain_window_secs: 5,
            admin_port: None,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: Secret::new("sqlite://data/chat.db?mode=rwc"),
            max_connections: 8,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_secret: None,
            token_ttl_secs: 24 * 3600,
            leeway_secs: 5,
            issuer: "chat-gateway".into(),
            external_issuers: Vec::new(),
            audience: None,
        }
    }
}

impl Default for WsSettings {
    fn default() -> Self {
        // Protocol v1's values (the gin-chat-room server's): ping every 54 s (9/10 of the pong wait), 60 s, 10 s.
        WsSettings {
            ping_interval_secs: 54,
            client_timeout_secs: 60,
            write_timeout_secs: 10,
            recovery_window: 1000,
            compression: true,
        }
    }
}

impl Default for LimitsSettings {
    fn default() -> Self {
        LimitsSettings {
            max_connections: 10_000,
            max_frame_bytes: 4096,
            max_content_chars: 2000,
            outbound_queue: 256,
            max_rooms_per_connection: 64,
            msg_rate: 20,
            msg_burst: 40,
            max_connections_per_user: 20,
            connect_rate_per_ip: 20,
            frame_rate: 100,
            read_bytes_rate: 128 * 1024,
            auth_rate_per_ip: 5,
            rest_write_rate: 5,
            max_rooms_per_user: 50,
            edit_window_secs: 24 * 3600,
        }
    }
}

impl Default for PresenceSettings {
    fn default() -> Self {
        PresenceSettings {
            ttl_secs: 60,
            large_room: 500,
            batch_ms: 1000,
            snapshot_max_users: 100,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

impl WsSettings {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs)
    }
    pub fn client_timeout(&self) -> Duration {
        Duration::from_secs(self.client_timeout_secs)
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }
}

/// A list from a TOML array or from one comma-separated string (environment).
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        One(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(items) => items,
        Raw::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// A string that never prints: database URLs carry passwords, keys are keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A setting that is present but wrong; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// Load the settings: defaults → `file` (if given) → `CHAT__*` from `env`.
/// `env` is passed in (rather than read here) so tests need no global state.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let defaults =
        Config::try_from(&Settings::default()).map_err(|e| ConfigError(e.to_string()))?;
    let mut builder = Config::builder().add_source(defaults);
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        builder = builder.add_source(File::from(path));
    }
    let vars: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("CHAT__"))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("CHAT")
            .prefix_separator("__")
            .separator("__")
            .source(Some(vars)),
    );
    let settings: Settings = builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|e| ConfigError(e.to_string()))?;
    settings.validate()?;
    Ok(settings)
}

/// What a `redis.url`'s scheme says: how the servers are arranged, and
/// whether the connection speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisScheme {
    pub topology: RedisTopology,
    pub tls: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisTopology {
    Single,
    Cluster,
    Sentinel,
}

impl RedisScheme {
    /// `redis`, `redis-cluster` or `redis-sentinel`, each also as `rediss...`
    /// (TLS); None for anything else.
    pub fn of(url: &str) -> Option<RedisScheme> {
        let (scheme, _) = url.split_once("://")?;
        let (base, topology) = match scheme.split_once('-') {
            None => (scheme, RedisTopology::Single),
            Some((base, "cluster")) => (base, RedisTopology::Cluster),
            Some((base, "sentinel")) => (base, RedisTopology::Sentinel),
            Some(_) => return None,
        };
        let tls = match base {
            "redis" => false,
            "rediss" => true,
            _ => return None,
        };
        Some(RedisScheme { topology, tls })
    }
}

impl Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, why: &str| Err(ConfigError(format!("{name}: {why}")));
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return bad(
                "database.url (CHAT__DATABASE__URL)",
                "must start with sqlite: or postgres://",
            );
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(['{', '}', ' ']) {
            return bad(
                "redis.key_prefix",
                "must be non-empty, without braces or spaces",
            );
        }
        let scheme = match &self.redis.url {
            Some(url) => match RedisScheme::of(url.expose()) {
                Some(scheme) => Some(scheme),
                None => {
                    return bad(
                        "redis.url (CHAT__REDIS__URL)",
                        "must start with redis://, redis-cluster:// or redis-sentinel:// (rediss... for TLS)",
                    );
                }
            },
            None => None,
        };
        if self.redis.tls_ca_file.is_some() && !scheme.is_some_and(|s| s.tls) {
            return bad(
                "redis.tls_ca_file (CHAT__REDIS__TLS_CA_FILE)",
                "needs a TLS URL (redis.url = rediss://...)",
            );
        }
        // Both combinations would start, but neither is what anyone wants:
        // classic PUBLISH on a Redis Cluster is broadcast to every shard (it
        // does not scale), and sharded pub/sub on one server only adds a
        // Redis 7 requirement. deploy/OPERATIONS.md: keep them together.
        let cluster_url = scheme.is_some_and(|s| s.topology == RedisTopology::Cluster);
        if self.redis.sharded_pubsub && !cluster_url {
            return bad(
                "redis.sharded_pubsub (CHAT__REDIS__SHARDED_PUBSUB)",
                "needs a Redis Cluster URL (redis.url = redis-cluster://...)",
            );
        }
        if cluster_url && !self.redis.sharded_pubsub {
            return bad(
                "redis.sharded_pubsub (CHAT__REDIS__SHARDED_PUBSUB)",
                "must be true with a redis-cluster:// URL (classic pub/sub would broadcast every message to every shard)",
            );
        }
        if matches!(&self.auth.jwt_secret, Some(s) if s.expose().len() < 16) {
            return bad(
                "auth.jwt_secret (CHAT__AUTH__JWT_SECRET)",
                "must be at least 16 bytes",
            );
        }
        if self.auth.issuer.is_empty() || self.auth.external_issuers.contains(&self.auth.issuer) {
            return bad(
                "auth.issuer (CHAT__AUTH__ISSUER)",
                "must be non-empty and not one of auth.external_issuers",
            );
        }
        if self.ws.ping_interval_secs == 0
            || self.ws.ping_interval_secs >= self.ws.client_timeout_secs
        {
            return bad(
                "ws.ping_interval_secs",
                "must be > 0 and below ws.client_timeout_secs",
            );
        }
        if self.server.drain_window_secs >= self.server.shutdown_timeout_secs {
            return bad(
                "server.drain_window_secs",
                "must be below server.shutdown_timeout_secs",
            );
        }
        if self.server.lame_duck_secs > 300 {
            return bad("server.lame_duck_secs", "must be at most 300");
        }
        if self.ws.write_timeout_secs == 0 {
            return bad("ws.write_timeout_secs", "must be > 0");
        }
        let limits = &self.limits;
        for (name, value) in [
            ("limits.max_connections", limits.max_connections),
            ("limits.max_content_chars", limits.max_content_chars),
            ("limits.outbound_queue", limits.outbound_queue),
            (
                "limits.max_rooms_per_connection",
                limits.max_rooms_per_connection,
            ),
            (
                "limits.max_connections_per_user",
                limits.max_connections_per_user,
            ),
            ("limits.msg_burst", limits.msg_burst as usize),
            ("limits.max_rooms_per_user", limits.max_rooms_per_user),
        ] {
            if value == 0 {
                return bad(name, "must be > 0");
            }
        }
        if limits.max_frame_bytes < 128 {
            return bad("limits.max_frame_bytes", "must be at least 128");
        }
        for cidr in &self.server.trusted_proxies {
            if parse_cidr(cidr).is_none() {
                return Err(ConfigError(format!(
                    "server.trusted_proxies (CHAT__SERVER__TRUSTED_PROXIES): {cidr:?} is not an address or a CIDR"
                )));
            }
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be > 0");
        }
        if self.presence.ttl_secs < 2 {
            return bad("presence.ttl_secs", "must be at least 2");
        }
        if self.presence.batch_ms == 0 {
            return bad("presence.batch_ms", "must be > 0");
        }
        if self.presence.snapshot_max_users == 0 {
            return bad("presence.snapshot_max_users", "must be > 0");
        }
        Ok(())
    }
}

/// `10.0.0.0/8`, `::1/128`, or a single address (`server.trusted_proxies`).
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_single_node() {
        let s = load(None, env(&[])).unwrap();
        assert_eq!(s.server.host, "127.0.0.1");
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.database.url.expose(), "sqlite://data/chat.db?mode=rwc");
        assert!(s.redis.url.is_none());
        assert!(s.auth.jwt_secret.is_none());
        assert_eq!(s.limits.max_connections, 10_000);
        assert_eq!(s.limits.max_frame_bytes, 4096);
        assert_eq!(s.limits.outbound_queue, 256);
        assert_eq!(
            (
                s.ws.ping_interval_secs,
                s.ws.client_timeout_secs,
                s.ws.write_timeout_secs
            ),
            (54, 60, 10)
        );
        assert_eq!(s.presence.ttl_secs, 60);
    }

    #[test]
    fn environment_overrides() {
        let s = load(
            None,
            env(&[
                ("CHAT__SERVER__PORT", "9001"),
                ("CHAT__SERVER__HOST", "0.0.0.0"),
                ("CHAT__AUTH__JWT_SECRET", "0123456789abcdef0123"),
                ("CHAT__LIMITS__MAX_CONNECTIONS", "5"),
                (
                    "CHAT__SERVER__ALLOWED_ORIGINS",
                    "https://a.example,https://b.example",
                ),
                ("CHAT__LOG__FORMAT", "json"),
                ("OTHER__SERVER__PORT", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.port, 9001);
        assert_eq!(s.server.host, "0.0.0.0");
        assert_eq!(s.auth.jwt_secret.unwrap().expose(), "0123456789abcdef0123");
        assert_eq!(s.limits.max_connections, 5);
        assert_eq!(
            s.server.allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(s.log.format, LogFormat::Json);
    }

    #[test]
    fn a_numeric_secret_stays_a_string() {
        let s = load(
            None,
            env(&[("CHAT__AUTH__JWT_SECRET", "12345678901234567890")]),
        )
        .unwrap();
        assert_eq!(s.auth.jwt_secret.unwrap().expose(), "12345678901234567890");
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.toml");
        std::fs::write(
            &path,
            "[server]\nport = 7000\nhost = \"10.0.0.1\"\n[limits]\nmax_content_chars = 50\n",
        )
        .unwrap();
        let s = load(Some(&path), env(&[("CHAT__SERVER__PORT", "7001")])).unwrap();
        assert_eq!(s.server.port, 7001);
        assert_eq!(s.server.host, "10.0.0.1");
        assert_eq!(s.limits.max_content_chars, 50);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CHAT__SERVER__PORT", "eighty")], "port"),
            (&[("CHAT__SERVER__PORT", "70000")], "port"),
            (&[("CHAT__SERVER__PROT", "80")], "prot"),
            (&[("CHAT__NOPE__X", "1")], "nope"),
            (&[("CHAT__DATABASE__URL", "mysql://x")], "database.url"),
            (&[("CHAT__REDIS__URL", "localhost:6379")], "redis.url"),
            (&[("CHAT__AUTH__JWT_SECRET", "short")], "jwt_secret"),
            (&[("CHAT__LIMITS__OUTBOUND_QUEUE", "0")], "outbound_queue"),
            (
                &[("CHAT__WS__PING_INTERVAL_SECS", "60")],
                "ping_interval_secs",
            ),
            (&[("CHAT__LOG__FORMAT", "xml")], "xml"),
            (
                &[("CHAT__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,haproxy")],
                "trusted_proxies",
            ),
            (
                &[("CHAT__LIMITS__MAX_ROOMS_PER_USER", "0")],
                "max_rooms_per_user",
            ),
        ];
        for (vars, needle) in cases {
            let err = load(None, env(vars)).expect_err(needle).to_string();
            assert!(err.to_lowercase().contains(needle), "{vars:?}: {err}");
        }
    }

    #[test]
    fn trusted_proxies_are_a_comma_separated_list() {
        let s = load(
            None,
            env(&[("CHAT__SERVER__TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]),
        )
        .unwrap();
        assert_eq!(s.server.trusted_proxies, ["10.0.0.0/8", "127.0.0.1"]);
        let d = load(None, env(&[])).unwrap();
        assert!(
            d.server.trusted_proxies.is_empty(),
            "no proxy trusted by default"
        );
        assert_eq!(
            (
                d.limits.frame_rate,
                d.limits.auth_rate_per_ip,
                d.limits.max_rooms_per_user
            ),
            (100, 5, 50)
        );
    }

    #[test]
    fn sharded_pubsub_goes_with_a_cluster_url() {
        let cluster = "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001";
        for (url, sharded, ok) in [
            (Some("redis://127.0.0.1:6379"), "false", true),
            (Some(cluster), "true", true),
            (Some("redis://127.0.0.1:6379"), "true", false),
            (None, "true", false),
            (Some(cluster), "false", false),
        ] {
            let mut vars = vec![("CHAT__REDIS__SHARDED_PUBSUB", sharded)];
            vars.extend(url.map(|u| ("CHAT__REDIS__URL", u)));
            match load(None, env(&vars)) {
                Ok(_) => assert!(ok, "{vars:?} was accepted"),
                Err(e) => {
                    assert!(!ok, "{vars:?}: {e}");
                    assert!(e.to_string().contains("redis.sharded_pubsub"), "{e}");
                }
            }
        }
    }

    #[test]
    fn redis_urls_name_their_topology_and_tls() {
        use RedisTopology::*;
        for (url, expected) in [
            ("redis://h:6379", Some((Single, false))),
            ("rediss://h:6379", Some((Single, true))),
            ("redis-cluster://h:7000?node=h:7001", Some((Cluster, false))),
            ("rediss-cluster://h:7000", Some((Cluster, true))),
            (
                "redis-sentinel://h:26379?sentinelServiceName=m",
                Some((Sentinel, false)),
            ),
            (
                "rediss-sentinel://h:26379?sentinelServiceName=m",
                Some((Sentinel, true)),
            ),
            ("redis-replica://h:6379", None),
            ("http://h:6379", None),
            ("h:6379", None),
        ] {
            let got = RedisScheme::of(url).map(|s| (s.topology, s.tls));
            assert_eq!(got, expected, "{url}");
        }
        let cluster_tls = [
            ("CHAT__REDIS__URL", "rediss-cluster://127.0.0.1:7000"),
            ("CHAT__REDIS__SHARDED_PUBSUB", "true"),
        ];
        assert!(load(None, env(&cluster_tls)).is_ok());
        let ca_without_tls = [
            ("CHAT__REDIS__URL", "redis://127.0.0.1:6379"),
            ("CHAT__REDIS__TLS_CA_FILE", "/etc/ca.pem"),
        ];
        let err = load(None, env(&ca_without_tls)).unwrap_err();
        assert!(err.to_string().contains("redis.tls_ca_file"), "{err}");
        let ca_with_tls = [
            ("CHAT__REDIS__URL", "rediss://127.0.0.1:6379"),
            ("CHAT__REDIS__TLS_CA_FILE", "/etc/ca.pem"),
        ];
        let s = load(None, env(&ca_with_tls)).unwrap();
        assert_eq!(
            s.redis.tls_ca_file.as_deref(),
            Some(Path::new("/etc/ca.pem"))
        );
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = load(Some(Path::new("/nonexistent/chat.toml")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/chat.toml"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = load(
            None,
            env(&[("CHAT__AUTH__JWT_SECRET", "super-secret-value-123")]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("super-secret"));
    }
}
