//! The Redis connection (fred) shared by the projector and the query API.
//!
//! Redis is a derived cache, never a source of truth, so the client is set up to fail
//! fast: a command gives up after a short timeout instead of queueing while Redis is
//! down, and the client reconnects in the background. Callers treat every error as
//! "no cache" and go to Postgres.

use std::time::Duration;

use fred::clients::WithOptions;
use fred::prelude::{Builder, Client, ClientLike, Config, Options, ReconnectPolicy};

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
