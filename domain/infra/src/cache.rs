//! The Redis connection (fred) shared by the projector and the query API.
//!
//! Redis is a derived cache, never a source of truth, so the client is set up to fail
//! fast: a command gives up after a short timeout instead of queueing while Redis is
//! down, and the client reconnects in the background. Callers treat every error as
//! "no cache" and go to Postgres.
//!
//! `REDIS_URL` may name a Redis Cluster (`redis-cluster://host:port?node=host:port…`).
//! A multi-key command must then stay within one hash slot: keys read together share
//! a hash tag (every product document is under `{catalog}`, so a page of products is
//! one MGET), and the writes below split by slot where keys do not (balances spread
//! over the whole cluster).

use std::collections::HashMap;
use std::time::Duration;

use fred::clients::WithOptions;
use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, Options, ReconnectPolicy};

/// How long a cache command may take before the caller falls back to Postgres.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// A client that is connecting (and will keep reconnecting) in the background.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let client = client(url)?;
    // Errors on the first connection are not fatal: the policy keeps retrying.
    let _ = client.init().await;
    Ok(client)
}

/// A configured client that is not connected yet (the URL is checked): `connect` it,
/// or `clone_new` it into one client per runtime.
pub fn client(url: &str) -> anyhow::Result<Client> {
    let mut config = Config::from_url(url)?;
    config.fail_fast = true;
    let client = Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_millis(500);
            c.internal_command_timeout = COMMAND_TIMEOUT;
            c.max_command_attempts = 1;
        })
        .set_policy(ReconnectPolicy::new_constant(0, 500))
        .build()?;
    Ok(client)
}

/// A new client with `base`'s configuration, connecting on the current runtime: one
/// per HTTP worker thread, so a Redis call never hops threads.
pub fn per_worker(base: &Client) -> Client {
    let client = base.clone_new();
    drop(client.connect());
    client
}

/// `client` for commands that must fail at once rather than wait in fred's queue for a
/// reconnection: a queued write that lands after a later one would leave a stale entry.
pub fn fail_fast(client: &Client) -> WithOptions<Client> {
    client.with_options(&Options {
        fail_fast: true,
        max_attempts: Some(1),
        timeout: Some(COMMAND_TIMEOUT),
        ..Options::default()
    })
}

/// Sets `entries` on every node that answers (one MSET per hash slot on a cluster, one
/// MSET otherwise): a best effort, whose error says only that something was not set.
pub async fn set_each<C: KeysInterface>(
    redis: &C,
    entries: Vec<(String, String)>,
) -> Result<(), fred::error::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    if !redis.is_clustered() {
        return redis.mset(entries).await;
    }
    let results = futures_util::future::join_all(
        by_slot(entries, |(k, _)| k.as_bytes()).into_values().map(|g| redis.mset(g)),
    )
    .await;
    results.into_iter().collect()
}

/// Groups items by the cluster hash slot of their key.
fn by_slot<T>(items: impl IntoIterator<Item = T>, key: impl Fn(&T) -> &[u8]) -> HashMap<u16, Vec<T>> {
    let mut groups: HashMap<u16, Vec<T>> = HashMap::new();
    for item in items {
        groups.entry(fred::util::redis_keyslot(key(&item))).or_default().push(item);
    }
    groups
}

/// Sets `entries`, then `last` (a checkpoint that tells readers the entries are in).
///
/// On one server, one MSET: atomic. On a cluster, one MSET per hash slot, sent
/// together, and `last` only once they all succeeded, so a reader that reads `last`
/// first and the entries after never sees entries older than `last` promises.
pub async fn set_then<C: KeysInterface>(
    redis: &C,
    mut entries: Vec<(String, String)>,
    last: Option<(String, String)>,
) -> Result<(), fred::error::Error> {
    if !redis.is_clustered() {
        entries.extend(last);
        return if entries.is_empty() { Ok(()) } else { redis.mset(entries).await };
    }
    futures_util::future::try_join_all(
        by_slot(entries, |(k, _)| k.as_bytes()).into_values().map(|group| redis.mset(group)),
    )
    .await?;
    match last {
        Some((k, v)) => redis.set(k, v, None, None, false).await,
        None => Ok(()),
    }
}

/// Unlinks `keys` (per hash slot on a cluster); how many existed.
pub async fn unlink_all<C: KeysInterface>(
    redis: &C,
    keys: Vec<fred::types::Key>,
) -> Result<u64, fred::error::Error> {
    if !redis.is_clustered() {
        return redis.unlink(keys).await;
    }
    let counts = futures_util::future::try_join_all(
        by_slot(keys, |k| k.as_bytes()).into_values().map(|g| redis.unlink::<u64, _>(g)),
    )
    .await?;
    Ok(counts.into_iter().sum())
}
