//! `projector run`: one worker per projection. A worker becomes the active instance by
//! taking the projection's session advisory lock on its own connection; until then it
//! is a hot standby that retries every half second. The lock dies with the session, so
//! when the active process dies a standby takes over within a second or so.
//!
//! The active worker applies batches until it catches up, then sleeps until a NOTIFY
//! or the poll interval wakes it. Shutdown is checked between batches only, so the
//! batch in hand always commits or rolls back whole. Every task the daemon starts is
//! tracked, and [`run`] returns only once all of them have finished.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use fred::prelude::Client as Redis;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use infra::store::{self, Checkpoint};

use crate::batch;
use crate::cache::{self, CacheHandle};
use crate::metrics::Metrics;
use crate::projections::Projection;

/// How soon to look again after an empty read, while events have been flowing…
const BUSY_POLL: Duration = Duration::from_millis(2);
/// …which is within this long of the last applied batch.
const BUSY_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub database_url: String,
    pub batch_size: i64,
    /// How often to look for events when no notification arrives.
    pub poll_interval: Duration,
    /// How often a standby tries to take over.
    pub standby_interval: Duration,
    /// The outbound-webhook dispatcher's settings.
    pub dispatch: crate::dispatch::DispatchConfig,
}

impl RunConfig {
    pub fn new(database_url: &str) -> Self {
        RunConfig {
            database_url: database_url.to_owned(),
            batch_size: 1000,
            poll_interval: Duration::from_millis(500),
            standby_interval: Duration::from_millis(500),
            dispatch: crate::dispatch::DispatchConfig::new(database_url, false),
        }
    }
}

/// Everything a worker shares with the others.
#[derive(Clone)]
pub struct Context {
    pub config: RunConfig,
    pub pool: Pool,
    pub redis: Redis,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
    /// Every task the daemon spawns, so shutdown can wait for them all.
    pub tasks: TaskTracker,
}

/// Runs the daemon in the background of the current runtime, with a pool of its own
/// and fresh metrics (embedding: tests, benchmarks, whose webhook receivers are local:
/// private targets are allowed). Cancel the token to stop it.
pub async fn spawn(database_url: &str, redis_url: &str) -> anyhow::Result<CancellationToken> {
    let mut config = RunConfig::new(database_url);
    config.dispatch.allow_private = true;
    spawn_with(config, redis_url).await
}

/// [`spawn`] with a given configuration.
pub async fn spawn_with(config: RunConfig, redis_url: &str) -> anyhow::Result<CancellationToken> {
    let database_url = config.database_url.clone();
    let database_url = database_url.as_str();
    let shutdown = CancellationToken::new();
    let ctx = Context {
        config,
        pool: infra::db::pool(database_url, 4)?,
        redis: infra::cache::connect(redis_url).await?,
        metrics: Metrics::new(),
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
    };
    tokio::spawn(run(ctx));
    Ok(shutdown)
}

/// Runs every projection until `shutdown` is cancelled, then waits for every task it
/// started (workers, cache writers, the listener, the horizon, connections) to finish.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let notified = listen(&ctx.tasks, &ctx.config.database_url, ctx.shutdown.clone());
    let wake =
        horizon(&ctx.tasks, ctx.pool.clone(), notified, ctx.config.poll_interval, ctx.shutdown.clone());
    ctx.tasks.spawn(crate::dispatch::run(
        ctx.config.dispatch.clone(),
        ctx.metrics.clone(),
        wake.clone(),
        ctx.shutdown.clone(),
    ));
    for p in Projection::ALL {
        let cache = cache::spawn(&ctx.tasks, p, ctx.redis.clone(), ctx.pool.clone(), ctx.metrics.clone());
        ctx.tasks.spawn(work(p, ctx.clone(), cache, wake.clone()));
    }
    ctx.tasks.close();
    ctx.tasks.wait().await;
    Ok(())
}

/// A wake-up counter bumped by every `tally_events` notification. A watch channel
/// remembers a bump that arrives while the worker is busy, so none is lost.
fn listen(tasks: &TaskTracker, url: &str, shutdown: CancellationToken) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    let url = url.to_owned();
    tasks.spawn(async move {
        while !shutdown.is_cancelled() {
            if let Err(e) = listen_once(&url, &tx, &shutdown).await {
                tracing::warn!(error = %e, "event notifications lost; reconnecting (polling continues)");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    });
    rx
}

/// The newest event it is safe to read, re-read on every notification and, while
/// events flow, every 2 ms: an event can become safe without a notification of its
/// own, when an older transaction ends. One cheap query here spares the workers from
/// polling with empty batch transactions.
fn horizon(
    tasks: &TaskTracker,
    pool: deadpool_postgres::Pool,
    mut notified: watch::Receiver<u64>,
    idle_poll: Duration,
    shutdown: CancellationToken,
) -> watch::Receiver<Checkpoint> {
    let (tx, rx) = watch::channel(Checkpoint::default());
    tasks.spawn(async move {
        let mut moved_at = Instant::now();
        while !shutdown.is_cancelled() {
            notified.borrow_and_update();
            if let Ok(client) = pool.get().await {
                match store::safe_head(&**client).await {
                    Ok(head) if head != *tx.borrow() => {
                        tx.send_replace(head);
                        moved_at = Instant::now();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read the store's head"),
                }
            }
            let poll = if moved_at.elapsed() < BUSY_WINDOW { BUSY_POLL } else { idle_poll };
            tokio::select! {
                _ = notified.changed() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    });
    rx
}

async fn listen_once(url: &str, tx: &watch::Sender<u64>, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let (client, mut conn) = tokio_postgres::connect(url, NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    let listen = client.batch_execute("LISTEN tally_events");
    // The connection must be polled for LISTEN to complete.
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            r = &mut listen, if !listening => {
                r?;
                listening = true;
            }
            m = messages.next() => match m {
                Some(Ok(AsyncMessage::Notification(_))) => { tx.send_modify(|n| *n += 1); }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

async fn work(
    projection: Projection,
    ctx: Context,
    cache: Option<CacheHandle>,
    wake: watch::Receiver<Checkpoint>,
) {
    let active = ctx.metrics.active.with_label_values(&[projection.name()]);
    while !ctx.shutdown.is_cancelled() {
        active.set(0);
        let client = match acquire(projection, &ctx).await {
            Ok(Some(client)) => client,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%projection, error = %e, "cannot reach Postgres; retrying");
                pause(&ctx, Duration::from_secs(1)).await;
                continue;
            }
        };
        active.set(1);
        tracing::info!(%projection, "active: this instance applies the projection");
        if let Err(e) = apply_until_shutdown(projection, &ctx, client, cache.as_ref(), wake.clone()).await {
            tracing::error!(%projection, error = %e, "projection stopped; reconnecting");
            pause(&ctx, Duration::from_secs(1)).await;
        }
    }
    active.set(0);
}

/// Connects and waits as a standby until this instance holds the projection's lock.
async fn acquire(projection: Projection, ctx: &Context) -> anyhow::Result<Option<Client>> {
    let (client, conn) = tokio_postgres::connect(&ctx.config.database_url, NoTls).await?;
    ctx.tasks.spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "projector connection closed");
        }
    });
    // A batch commits its rows and its checkpoint together, so it need not wait for the
    // WAL flush: a crash that loses the last batches loses their checkpoint with them,
    // and they are applied again (the cache's purge covers Redis being ahead).
    client
        .batch_execute(&format!(
            "SET search_path = read; SET application_name = 'tally-projector:{projection}'; \
             SET synchronous_commit = off"
        ))
        .await?;
    let mut announced = false;
    loop {
        let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&projection.leader_lock()]).await?;
        if row.get::<_, bool>(0) {
            return Ok(Some(client));
        }
        if !announced {
            tracing::info!(%projection, "standby: another instance is active");
            announced = true;
        }
        if pause(ctx, ctx.config.standby_interval).await {
            return Ok(None);
        }
    }
}

async fn apply_until_shutdown(
    projection: Projection,
    ctx: &Context,
    mut client: Client,
    cache: Option<&CacheHandle>,
    mut wake: watch::Receiver<Checkpoint>,
) -> anyhow::Result<()> {
    let name = projection.name();
    let mut generation = None;
    while !ctx.shutdown.is_cancelled() {
        let head = *wake.borrow_and_update();
        let started = Instant::now();
        let Some(batch) = batch::step(&mut client, projection, ctx.config.batch_size).await? else {
            // Everything safe up to `head` (at least) is applied: sleep until the
            // horizon moves past it, polling slowly in case the horizon task stalls.
            while *wake.borrow() <= head && !ctx.shutdown.is_cancelled() {
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(ctx.config.poll_interval) => break,
                    _ = ctx.shutdown.cancelled() => {}
                }
            }
            continue;
        };
        ctx.metrics.events.with_label_values(&[name]).inc_by(batch.events as u64);
        ctx.metrics.batch_size.with_label_values(&[name]).observe(batch.events as f64);
        ctx.metrics.batch_seconds.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
        tracing::debug!(%projection, events = batch.events, position = %batch.last.token(), "batch applied");
        if let Some(cache) = cache {
            if generation.is_some_and(|g| g != batch.generation) {
                cache.invalidate(batch.last);
            }
            cache.publish(batch.changes, batch.last);
        }
        generation = Some(batch.generation);
    }
    Ok(())
}

/// Sleeps for `d` unless shutdown comes first; true when it did.
async fn pause(ctx: &Context, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = ctx.shutdown.cancelled() => true,
    }
}
