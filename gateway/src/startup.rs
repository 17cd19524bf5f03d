//! Building and running one node: connect the database and run migrations,
//! choose the bus and presence backends, start the background tasks, bind the
//! listener (port 0 picks a free one, for tests) and serve.

use crate::auth::token::TokenService;
use crate::bus::{
    Bus,
    memory::{MemoryBus, MemoryNetwork},
    redis::RedisBus,
};
use crate::config::Settings;
use crate::history::History;
use crate::limits::connections::ConnectionLimiter;
use crate::node::Node;
use crate::presence::{Presence, memory::MemoryPresence, redis::RedisPresence};
use crate::redis::RedisConn;
use crate::routes;
use crate::state::AppState;
use crate::store::Store;
use crate::user_conns::{UserConns, memory::MemoryUserConns, redis::RedisUserConns};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use fred::interfaces::EventInterface;
use shared::ids::NodeId;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Envelopes waiting for the router; publishers wait when it is full.
const ROUTER_QUEUE: usize = 4096;
/// How long actix waits for in-flight HTTP requests once the sessions are gone.
const ACTIX_SHUTDOWN_SECS: u64 = 3;

pub struct Application {
    port: u16,
    admin_port: Option<u16>,
    server: Server,
    admin: Option<Server>,
    stopper: Stopper,
}

/// Stops a running node gracefully; cloneable, usable from a signal handler or a test.
#[derive(Clone)]
pub struct Stopper {
    state: web::Data<AppState>,
    server: ServerHandle,
    admin: Option<ServerHandle>,
    /// Stops the background tasks after the sessions are gone.
    background: CancellationToken,
    /// Every background task this node started: stopping waits for them
    /// (the online-status writer's last writes must land).
    tasks: TaskTracker,
    grace: Duration,
}

/// The backends several nodes of one process share when there is no Redis:
/// a linked in-process bus, one presence registry, one per-user connection
/// count. What the test suites use to run N nodes in one process.
#[derive(Clone, Default)]
pub struct InProcessCluster {
    network: Arc<MemoryNetwork>,
    presence: Arc<MemoryPresence>,
    user_conns: Arc<MemoryUserConns>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_in(settings, None).await
    }

    /// [`build`](Self::build); without Redis, a node of `cluster` when given.
    pub async fn build_in(
        settings: Settings,
        cluster: Option<InProcessCluster>,
    ) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        crate::metrics::metrics().init_labels(
            &crate::ws::handshake::Refused::ALL.map(crate::ws::handshake::Refused::label),
            &crate::limits::Limit::ALL.map(crate::limits::Limit::label),
        );
        let memory_limit = crate::memory::cgroup_limit().unwrap_or(0);
        crate::metrics::metrics()
            .memory_limit
            .set(memory_limit.try_into().unwrap_or(i64::MAX));
        let store = Store::connect(
            settings.database.url.expose(),
            settings.database.max_connections,
        )
        .await
        .context("cannot connect to the database (database.url)")?;
        store
            .migrate()
            .await
            .context("cannot run the database migrations")?;
        let store = store.with_group_commit();

        let (tokens, generated) = TokenService::from_settings(&settings.auth);
        if generated {
            tracing::warn!(
                "CHAT__AUTH__JWT_SECRET is not set: using a random key; tokens will not survive a restart"
            );
        }

        let node_id = NodeId(uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
        let (bus_tx, bus_rx) = mpsc::channel(ROUTER_QUEUE);
        let mut redis = None;
        // Rung when the node may have missed bus messages and is receiving
        // again (re-subscribed after a reconnect, or a subscriber that fell
        // behind): every connection catches up from the history.
        let refill = Arc::new(Notify::new());
        type Backends = (Arc<dyn Bus>, Arc<dyn Presence>, Arc<dyn UserConns>);
        let (bus, presence, user_conns): Backends = match (&settings.redis.url, cluster) {
            (None, None) => (
                Arc::new(MemoryBus::new(bus_tx)),
                Arc::new(MemoryPresence::default()),
                Arc::new(MemoryUserConns::default()),
            ),
            (None, Some(cluster)) => (
                Arc::new(MemoryBus::linked(&cluster.network, bus_tx)),
                cluster.presence,
                cluster.user_conns,
            ),
            (Some(_), _) => {
                let conn = RedisConn::connect(&settings.redis).await?;
                let ttl = Duration::from_secs(settings.presence.ttl_secs);
                redis = Some(conn.clone());
                (
                    Arc::new(RedisBus::start(conn.clone(), bus_tx, Arc::clone(&refill))),
                    Arc::new(RedisPresence::new(conn.clone(), ttl)),
                    Arc::new(RedisUserConns::new(conn, ttl)),
                )
            }
        };
        let backend = bus.name();
        let node = Arc::new(Node::new(
            node_id.clone(),
            bus,
            presence,
            user_conns,
            store.clone(),
            settings.limits.max_content_chars,
            settings.presence.clone(),
        ));
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();
        // Tasks that end on their own when `background` is cancelled are
        // spawned as they are; the others (loops over a channel) are
        // dropped then (`until`).
        tasks.spawn(until(
            background.clone(),
            Arc::clone(&node).run_router(bus_rx),
        ));
        node.subscribe_node_channel()
            .await
            .context("cannot subscribe the node channel on the bus")?;
        tasks.spawn(Arc::clone(&node).run_presence_batcher(background.clone()));
        tasks.spawn(Arc::clone(&node.user_status).run(store.clone(), background.clone()));
        let history = Arc::new(History::new(store.clone(), redis.clone()));
        let backends = Arc::new(crate::state::BackendHealth::new());
        tasks.spawn(watch_backends(
            Arc::clone(&node),
            store.clone(),
            Arc::clone(&backends),
            background.clone(),
        ));
        if let Some(redis) = redis {
            // The refill waits for the re-subscription to be confirmed:
            // reading the history before it would miss what is published
            // between the read and the SUBSCRIBE (see `redis::resubscribe`).
            tasks.spawn(until(
                background.clone(),
                crate::redis::resubscribe::run(redis.clone(), Arc::clone(&refill)),
            ));
            // Shared presence has a TTL: refresh ours, prune dead nodes', and
            // re-assert at once after a reconnect (Redis may have lost it all).
            let reassert = Arc::new(Notify::new());
            let mut reconnects = redis.client.reconnect_rx();
            let ring = Arc::clone(&reassert);
            tasks.spawn(until(background.clone(), async move {
                while reconnects.recv().await.is_ok() {
                    crate::metrics::metrics().bus_reconnects.inc();
                    ring.notify_one();
                }
            }));
            let every = Duration::from_millis(settings.presence.ttl_secs * 1000 / 3);
            tasks.spawn(Arc::clone(&node).run_presence_keeper(
                every,
                reassert,
                refill,
                background.clone(),
            ));
        }

        let state = web::Data::new(AppState {
            settings: Arc::clone(&settings),
            store,
            node,
            tokens: Arc::new(tokens),
            history,
            limiter: ConnectionLimiter::new(settings.limits.max_connections),
            limits: crate::limits::Limits::new(&settings),
            stop_signalled: CancellationToken::new(),
            backends,
        });

        tasks.spawn(forget_idle_keys(state.clone(), background.clone()));
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        // Sessions are drained by `Stopper::stop` within the shutdown timeout;
        // what actix waits for after that is plain HTTP requests, so a short
        // bound keeps the whole stop within the timeout plus a few seconds.
        let server = crate::serve::main_server(
            state.clone(),
            listener,
            workers,
            ACTIX_SHUTDOWN_SECS.min(settings.server.shutdown_timeout_secs),
        )?;
        tracing::info!(node = %node_id, host = %settings.server.host, port, bus = backend, database = state.store.backend_name(), "gateway listening");
        let (admin, admin_port) = match settings.server.admin_port {
            None => (None, None),
            Some(wanted) => {
                let listener = TcpListener::bind((settings.server.host.as_str(), wanted))
                    .with_context(|| {
                        format!(
                            "cannot listen on {}:{wanted} (server.admin_port)",
                            settings.server.host
                        )
                    })?;
                let admin_port = listener.local_addr()?.port();
                let app_state = state.clone();
                let admin = HttpServer::new(move || {
                    App::new()
                        .app_data(app_state.clone())
                        .configure(routes::configure_admin)
                })
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run();
                tracing::info!(port = admin_port, "admin port (metrics, health) listening");
                (Some(admin), Some(admin_port))
            }
        };
        let stopper = Stopper {
            state,
            server: server.handle(),
            admin: admin.as_ref().map(Server::handle),
            background,
            tasks,
            grace: Duration::from_secs(settings.server.shutdown_timeout_secs),
        };
        Ok(Application {
            port,
            admin_port,
            server,
            admin,
            stopper,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound admin port, when `server.admin_port` is set.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.stopper.state.clone()
    }

    /// Serve until stopped (by [`Stopper::stop`] or, with `signals`, SIGTERM / Ctrl-C).
    pub async fn run_until_stopped(self, signals: bool) -> std::io::Result<()> {
        if signals {
            let stopper = self.stopper.clone();
            tokio::spawn(async move {
                crate::shutdown::signal().await;
                tracing::info!("stop signal received, draining");
                stopper.stop().await;
            });
        }
        match self.admin {
            // The admin server is stopped with the main one (see `Stopper::stop`).
            Some(admin) => futures_util::future::try_join(self.server, admin)
                .await
                .map(drop),
            None => self.server.await,
        }
    }
}

impl Stopper {
    /// Background tasks still running (0 once a stop has returned).
    pub fn background_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Fail `/readyz` and keep serving for `server.lame_duck_secs` (the
    /// balancer notices and stops sending clients), then refuse new
    /// upgrades, close every session (1012), wait for them up to the grace
    /// period, flush the background writers, stop the HTTP server.
    pub async fn stop(&self) {
        crate::metrics::metrics().draining.set(1.0);
        self.state.stop_signalled.cancel();
        let lame_duck = self.state.settings.server.lame_duck_secs;
        if lame_duck > 0 {
            tracing::info!(
                secs = lame_duck,
                "lame duck: /readyz fails, requests and upgrades are still served"
            );
            tokio::time::sleep(Duration::from_secs(lame_duck)).await;
        }
        self.state.node.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.state.limiter.open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Pending database writes (online status) are flushed before the
        // HTTP server stops: pooled connections opened on its worker threads
        // stop working with them.
        self.background.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.tasks.len(),
                "background tasks still running 5 s after the stop"
            );
        }
        self.server.stop(true).await;
        if let Some(admin) = &self.admin {
            admin.stop(true).await;
        }
    }
}

/// `task` until it ends or `stop` is cancelled (then it is dropped).
async fn until(stop: CancellationToken, task: impl std::future::Future<Output = ()>) {
    tokio::select! {
        () = task => {}
        () = stop.cancelled() => {}
    }
}

/// Probe the bus and the database every 2 s: what `/readyz` reports, and
/// `chat_gateway_bus_connected` and `chat_gateway_database_up` (which feed
/// the unreachable alerts).
async fn watch_backends(
    node: Arc<Node>,
    store: crate::store::Store,
    health: Arc<crate::state::BackendHealth>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let m = crate::metrics::metrics();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Both probes at once, each bounded by 1 s.
                let (bus, ping) = tokio::join!(
                    node.bus_ready(),
                    tokio::time::timeout(Duration::from_secs(1), store.ping())
                );
                let database = matches!(ping, Ok(Ok(())));
                health.set(database, bus);
                m.bus_connected.set(bus as i64);
                m.database_up.set(database as i64);
                let (in_use, idle, max) = store.pool_usage();
                m.db_pool_connections.with_label_values(&["in_use"]).set(in_use.into());
                m.db_pool_connections.with_label_values(&["idle"]).set(idle.into());
                m.db_pool_max.set(max.into());
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// The keyed limiters remember every address and user they saw, the typing
/// gate every user and room that typed: forget the idle ones.
async fn forget_idle_keys(state: web::Data<AppState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.limits.forget_idle();
                state.node.forget_idle_typing();
            }
            _ = stop.cancelled() => return,
        }
    }
}
