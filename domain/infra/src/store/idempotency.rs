//! `Idempotency-Key` records: the first successful response to a keyed request, stored
//! in the same transaction as the events it produced.
//!
//! A key is claimed without writing: [`claim`] takes a transaction-scoped advisory lock
//! on the key (so a second request with the same key waits for the first to finish) and
//! then looks for a stored response. Writing a claim row would assign the transaction
//! its id before the command's stream locks are held, which breaks the global order
//! (see [`super::lock_streams`]). The response is written by [`record`] at commit.

use serde_json::Value;
use tokio_postgres::GenericClient;

use super::StoreError;

/// A request's key, bound to the caller and a fingerprint of the request.
#[derive(Debug, Clone)]
pub struct Key {
    pub caller: String,
    pub key: String,
    pub fingerprint: Vec<u8>,
}

/// A stored response.
#[derive(Debug, Clone)]
pub struct Stored {
    pub fingerprint: Vec<u8>,
    pub status: u16,
    pub body: Value,
}

/// Locks the key for the rest of the transaction and returns the response stored
/// under it, if any. Call it before the command takes any stream lock.
pub async fn claim(tx: &impl GenericClient, key: &Key) -> Result<Option<Stored>, StoreError> {
    let lock = super::write::lock_key(b"idempotency\0", format!("{}\0{}", key.caller, key.key).as_bytes());
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock]).await?;
    let row = tx
        .query_opt(
            "SELECT request_hash, status, body FROM es.idempotency WHERE caller = $1 AND key = $2",
            &[&key.caller, &key.key],
        )
        .await?;
    Ok(row.map(|r| Stored { fingerprint: r.get(0), status: r.get::<_, i16>(1) as u16, body: r.get(2) }))
}

/// Stores the response to a claimed key, in the command's transaction.
pub async fn record(tx: &impl GenericClient, key: &Key, status: u16, body: &Value) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO es.idempotency (caller, key, request_hash, status, body) VALUES ($1, $2, $3, $4, $5)",
        &[&key.caller, &key.key, &key.fingerprint, &(status as i16), body],
    )
    .await?;
    Ok(())
}
