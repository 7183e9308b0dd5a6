//! Connection pools and migrations.
//!
//! Migrations are the plain SQL files in `migrations/`, embedded at build time and
//! applied only by `projector migrate`. Every service calls [`ensure_migrated`] at
//! start-up and refuses to run against an unmigrated or older database.

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// A pool of `size` connections to `url`.
pub fn pool(url: &str, size: usize) -> anyhow::Result<Pool> {
    let config: tokio_postgres::Config = url.parse().context("DATABASE_URL is not a valid URL")?;
    pool_from_config(config, size)
}

/// A pool of `size` connections made with `config`.
pub fn pool_from_config(config: tokio_postgres::Config, size: usize) -> anyhow::Result<Pool> {
    let manager =
        Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(size).build().context("building the Postgres pool")
}

/// Applies every pending migration (idempotent; concurrent runs serialize on a lock).
pub async fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    let (mut client, connection) =
        tokio_postgres::connect(url, NoTls).await.context("connecting to Postgres to migrate")?;
    let conn = tokio::spawn(connection);
    client.execute("SELECT pg_advisory_lock(7361626)", &[]).await?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    client.execute("SELECT pg_advisory_unlock(7361626)", &[]).await?;
    drop(client);
    let _ = conn.await;
    let report = report.context("applying migrations")?;
    Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
}

/// The newest migration this build knows.
pub fn latest_migration() -> i32 {
    embedded::migrations::runner().get_migrations().iter().map(|m| m.version() as i32).max().unwrap_or(0)
}

/// A short fingerprint of every embedded migration's contents (refinery's checksums),
/// so a cached test template made from an earlier edit of a migration is not reused.
pub fn migrations_fingerprint() -> String {
    let sum = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .fold(0u64, |acc, m| acc.rotate_left(7) ^ m.checksum());
    format!("{:08x}", sum as u32)
}

/// Fails with a message naming the fix when the database is behind this build.
pub async fn ensure_migrated(pool: &Pool) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres (is DATABASE_URL right?)")?;
    let applied: i32 = client
        .query_opt("SELECT max(version) FROM refinery_schema_history", &[])
        .await
        .ok()
        .flatten()
        .and_then(|r| r.get::<_, Option<i32>>(0))
        .unwrap_or(0);
    let wanted = latest_migration();
    if applied < wanted {
        anyhow::bail!(
            "the database is at migration {applied} but this build needs {wanted}: \
             run `projector migrate` (with the same DATABASE_URL) first"
        );
    }
    Ok(())
}
