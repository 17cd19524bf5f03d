//! PostgreSQL for a test: a fresh database on the server of `TEST_DATABASE_URL`
//! ([`TestDb`], dropped afterwards), or a server of the test's own
//! ([`PgServer`]) when the test stops the database or needs it on TLS.

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::time::Instant;

use super::processes::log_file;
use super::{HOW_TO_RUN, Proc, TestCerts, free_port, run_cmd, tail, unique};

pub(super) fn test_database_url() -> String {
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
    pub(super) dir: PathBuf,
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
