//! Test support: every test gets its own database, cloned from a migrated template.
//!
//! The template's name embeds the newest migration version, so changing migrations
//! makes a new template. Creating it is serialized across test processes with an
//! advisory lock. Databases are dropped when the [`TestDb`] is dropped; `scripts/test`
//! also sweeps leftovers of crashed runs.

use anyhow::Context;
use tokio_postgres::NoTls;
use uuid::Uuid;

use super::db;

/// A fresh, migrated database for one test.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub name: String,
    admin_url: String,
}

/// The superuser URL tests use to create databases (`DATABASE_URL`, else the dev one).
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| super::config::DEV_DATABASE_URL.into())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if base[..i].contains("//") && base[..i].ends_with(|c| c != '/') => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to test Postgres ({})", redact(url)))?;
    tokio::spawn(conn);
    Ok(client)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

impl TestDb {
    pub async fn new() -> anyhow::Result<Self> {
        let admin_url = admin_url();
        let admin = connect(&with_database(&admin_url, "postgres")).await?;
        let template = format!("tally_template_v{}", db::latest_migration());
        ensure_template(&admin, &admin_url, &template).await?;
        let name = format!("tally_test_{}", Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .context("cloning the template database")?;
        Ok(TestDb { url: with_database(&admin_url, &name), name, admin_url })
    }

    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }
}

async fn ensure_template(
    admin: &tokio_postgres::Client,
    admin_url: &str,
    template: &str,
) -> anyhow::Result<()> {
    admin.execute("SELECT pg_advisory_lock(4242)", &[]).await?;
    let result = async {
        let exists =
            admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template]).await?.is_some();
        if !exists {
            let building = format!("{template}_building");
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building}")).await?;
            admin.batch_execute(&format!("CREATE DATABASE {building}")).await?;
            db::migrate(&with_database(admin_url, &building)).await?;
            admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}")).await?;
        }
        anyhow::Ok(())
    }
    .await;
    admin.execute("SELECT pg_advisory_unlock(4242)", &[]).await?;
    result
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = with_database(&self.admin_url, "postgres");
        let name = self.name.clone();
        // Drop may run inside a runtime; use a private one on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let admin = connect(&admin_url).await.ok()?;
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()
            })
        })
        .join();
    }
}

/// A private `redis-server` for one test, on a free port, so a test may stop and
/// restart it. Stopping saves its data, so a restart brings the old (now stale) entries
/// back, as a real Redis restart would.
pub struct TestRedis {
    pub url: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl TestRedis {
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("tally-test-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut redis = TestRedis { url: format!("redis://127.0.0.1:{port}"), port, dir, child: None };
        redis.restart().await?;
        Ok(redis)
    }

    /// Starts the server (again), loading what it saved when stopped.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting redis-server (scripts/test installs it)")?;
        self.child = Some(child);
        for _ in 0..100 {
            if self.ping().await {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!("redis-server did not start on port {}", self.port)
    }

    /// Saves and stops the server.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
            let _ = s.write_all(b"SHUTDOWN SAVE\r\n").await;
        }
        if let Some(mut child) = self.child.take() {
            tokio::task::spawn_blocking(move || child.wait()).await??;
        }
        Ok(())
    }

    async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else { return false };
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").await.is_ok()
            && matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name_and_keeps_the_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5/a?sslmode=disable", "b"),
            "postgres://u:p@h:5/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5/a", "b"), "postgres://u@h:5/b");
        assert_eq!(with_database("postgres://u@h:5", "b"), "postgres://u@h:5/b");
    }
}
