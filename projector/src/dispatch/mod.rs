//! The outbound-webhook dispatcher (design §13), inside `projector run`. It works like
//! a projection: one active instance holds its advisory lock (the others are hot
//! standbys), and its fan-out moves its own checkpoint through the safe global order
//! in exactly-once batches ([`fanout`]). Its sender delivers each endpoint's queue in
//! a task of its own ([`send`]). Neither touches the read models' checkpoints, so a
//! slow or dead receiver never delays them.

use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, watch};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use infra::store::Checkpoint;

use crate::metrics::Metrics;

pub mod events;
pub mod fanout;
pub mod send;

/// The dispatcher's session advisory lock (beside the projections' `0x7a11_70xx`).
pub const LEADER_LOCK: i64 = 0x7a11_7050;
const BATCH: i64 = 500;
/// How often the fan-out looks when no event arrives (offer announcements are due by
/// the clock).
const IDLE_STEP: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub database_url: String,
    /// `TALLY_WEBHOOK_ALLOW_PRIVATE`: private, loopback and link-local targets allowed.
    pub allow_private: bool,
    /// `TALLY_WEBHOOK_RETRY_CAP_SECS` (3600): the longest wait between two attempts.
    pub retry_cap: Duration,
    /// `TALLY_LOW_STOCK_THRESHOLD` (10): `product.low_stock` when fewer units are left.
    pub low_stock: i64,
}

impl DispatchConfig {
    pub fn new(database_url: &str, allow_private: bool) -> Self {
        DispatchConfig {
            database_url: database_url.to_owned(),
            allow_private,
            retry_cap: Duration::from_secs(3600),
            low_stock: 10,
        }
    }
}

/// Runs as active instance or standby until `shutdown`; `wake` is the runner's safe
/// horizon, which moves when new events can be read.
pub async fn run(
    config: DispatchConfig,
    metrics: Metrics,
    wake: watch::Receiver<Checkpoint>,
    shutdown: CancellationToken,
) {
    let (http, pool) = match (send::client(&config), own_pool(&config.database_url)) {
        (Ok(http), Ok(pool)) => (http, pool),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "the webhook dispatcher cannot start");
            return;
        }
    };
    let mut announced = false;
    while !shutdown.is_cancelled() {
        let tools = Tools { pool: pool.clone(), http: http.clone(), metrics: metrics.clone() };
        match lead(&config, &tools, wake.clone(), &shutdown, &mut announced).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "webhook dispatcher stopped; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// The dispatcher's own connections, so it never competes with the projections for
/// theirs. Its bookkeeping commits without waiting for the WAL flush: a "delivered"
/// mark lost in a Postgres crash only means that delivery is sent again, which at least
/// once allows, and each delivery then costs no disk flush.
fn own_pool(url: &str) -> anyhow::Result<Pool> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.options("-c synchronous_commit=off").application_name("tally-projector:webhooks");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        NoTls,
        deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
    );
    Ok(Pool::builder(manager).max_size(8).build()?)
}

/// What the sender works with.
#[derive(Clone)]
pub struct Tools {
    pub pool: Pool,
    pub http: reqwest::Client,
    pub metrics: Metrics,
}

/// Takes the lock if free and, while it is held, fans out and sends.
async fn lead(
    config: &DispatchConfig,
    tools: &Tools,
    wake: watch::Receiver<Checkpoint>,
    shutdown: &CancellationToken,
    announced: &mut bool,
) -> anyhow::Result<()> {
    let (mut client, conn) = tokio_postgres::connect(&config.database_url, NoTls).await?;
    let conn = tokio::spawn(conn);
    // The fan-out's batch and its checkpoint commit together; if Postgres crashes
    // before the commit is flushed, both roll back and the batch is fanned out again, so
    // it need not wait for the WAL flush.
    client
        .batch_execute("SET application_name = 'tally-projector:webhooks'; SET synchronous_commit = off")
        .await?;
    let locked: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]).await?.get(0);
    if !locked {
        if !*announced {
            tracing::info!("webhooks: standby, another instance dispatches");
            *announced = true;
        }
        return Ok(());
    }
    tracing::info!("webhooks: active, this instance dispatches");
    *announced = false;
    let (queued, news) = mpsc::unbounded_channel();
    let sender = send::run(tools.clone(), config.clone(), news);
    let fanout = fan_out(&mut client, config, wake, &queued, &tools.metrics);
    tokio::select! {
        r = sender => r,
        r = fanout => r,
        _ = conn => anyhow::bail!("the dispatcher's lock connection closed"),
        _ = shutdown.cancelled() => Ok(()),
    }
}

async fn fan_out(
    client: &mut tokio_postgres::Client,
    config: &DispatchConfig,
    mut wake: watch::Receiver<Checkpoint>,
    queued: &mpsc::UnboundedSender<Vec<uuid::Uuid>>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let mut fanout = fanout::Fanout::start(client).await?;
    loop {
        let step = fanout.step(client, BATCH, config.low_stock, Utc::now()).await?;
        if step.queued > 0 {
            metrics.webhook_queued.inc_by(step.queued);
            // The sender is gone only when this task is being dropped too.
            let _ = queued.send(step.endpoints);
        }
        if step.events < BATCH as usize {
            tokio::select! {
                moved = wake.changed() => if moved.is_err() {
                    // The horizon is gone (shutting down): poll slowly instead.
                    tokio::time::sleep(IDLE_STEP).await;
                },
                _ = tokio::time::sleep(IDLE_STEP) => {}
            }
        }
    }
}
