//! Test support: every test gets its own database, cloned from a migrated template.
//!
//! The template's name embeds the newest migration version, so changing migrations
//! makes a new template. Creating it is serialized across test processes with an
//! advisory lock. Databases are dropped when the [`TestDb`] is dropped; `scripts/test`
//! also sweeps leftovers of crashed runs.

use anyhow::Context;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::db;

mod postgres;
mod redis;
pub use postgres::TestPostgres;
pub use redis::{TestRedis, TestRedisCluster};

/// A fresh, migrated database for one test.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub name: String,
    admin_url: String,
}

/// The superuser URL tests use to create databases (`DATABASE_URL`, else the dev one).
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| crate::config::DEV_DATABASE_URL.into())
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
    /// A database on the server of `DATABASE_URL`.
    pub async fn new() -> anyhow::Result<Self> {
        Self::on(&admin_url()).await
    }

    /// A database on the server `admin_url` points at, e.g. a [`TestPostgres`].
    pub async fn on(admin_url: &str) -> anyhow::Result<Self> {
        let admin_url = admin_url.to_owned();
        let admin = connect(&with_database(&admin_url, "postgres")).await?;
        let template = format!("tally_template_v{}_{}", db::latest_migration(), db::migrations_fingerprint());
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
