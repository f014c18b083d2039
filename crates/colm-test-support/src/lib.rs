//! colm-test-support: real servers for the tests, each on a free loopback port and stopped
//! when dropped — never part of a library colm ships.
//!
//! - [`LocalRedis`]: a `redis-server` without persistence (Debian package `redis-server`);
//! - [`LocalPostgres`]: a PostgreSQL server in a fresh data directory (Debian package
//!   `postgresql`).
//!
//! `scripts/setup --tests` installs both packages.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server that could not be started; the message says which and why (a missing Debian
/// package, a server that did not answer).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FixtureError(String);

/// A free TCP port on 127.0.0.1.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A `redis-server` of this machine on a free loopback port, without persistence, stopped when
/// dropped.
pub struct LocalRedis {
    child: Child,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
}

impl LocalRedis {
    /// Starts one and waits until it answers `PING` (at most 10 s).
    ///
    /// # Errors
    /// `redis-server` is missing or does not answer.
    pub async fn start() -> Result<Self, FixtureError> {
        Self::launch().await.map_err(FixtureError)
    }

    async fn launch() -> Result<Self, String> {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server (Debian package redis-server): {e}"))?;
        let server = Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            if server.ping().await.is_ok() {
                return Ok(server);
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!("redis-server on {} did not answer", server.url));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ping(&self) -> Result<(), redis::RedisError> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(())
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL server of this machine on a free loopback port, in a fresh data directory
/// (trust authentication, user `colm`, no fsync), stopped and removed when dropped. As root its
/// processes run as the `postgres` user (PostgreSQL refuses root).
pub struct LocalPostgres {
    child: Child,
    dir: std::path::PathBuf,
    /// `postgres://colm@127.0.0.1:PORT/postgres`.
    pub url: String,
}

impl LocalPostgres {
    /// Starts one and waits until it answers (at most 30 s).
    ///
    /// # Errors
    /// PostgreSQL is not installed, or does not start.
    pub async fn start() -> Result<Self, FixtureError> {
        Self::launch().await.map_err(FixtureError)
    }

    async fn launch() -> Result<Self, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no /usr/lib/postgresql (Debian package postgresql): {e}"))?
            .filter_map(Result::ok)
            .map(|d| d.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()
            .ok_or("no initdb under /usr/lib/postgresql/*/bin")?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("colm-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // As root: the postgres user's ids, for the data directory and the processes.
        let id = |args: &[&str]| -> Option<u32> {
            let out = Command::new("id").args(args).output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse().ok()
        };
        let owner = if id(&["-u"]) == Some(0) {
            let ids = id(&["-u", "postgres"]).zip(id(&["-g", "postgres"]));
            Some(ids.ok_or("running as root and there is no postgres user")?)
        } else {
            None
        };
        let as_owner = |program: std::path::PathBuf| {
            use std::os::unix::process::CommandExt as _;
            let mut c = Command::new(program);
            if let Some((uid, gid)) = owner {
                c.uid(uid).gid(gid);
            }
            c
        };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let data = dir.join("data");
        let init = as_owner(bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "colm", "-A", "trust", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !init.success() {
            return Err("initdb failed".into());
        }
        let child = as_owner(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run postgres: {e}"))?;
        let server = Self {
            child,
            dir,
            url: format!("postgres://colm@127.0.0.1:{port}/postgres"),
        };
        let started = Instant::now();
        loop {
            if tokio_postgres::connect(&server.url, tokio_postgres::NoTls)
                .await
                .is_ok()
            {
                return Ok(server);
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("postgres on {} did not answer", server.url));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
