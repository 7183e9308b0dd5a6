//! Refresh tokens (design §10): opaque, 256 random bits, 30 days, stored only as a
//! SHA-256. A login (or registration) starts a chain; a refresh marks its token used
//! and adds the next one to the chain. A used token presented again means someone
//! kept a copy: the whole chain is revoked. A password change, a role change and an
//! erasure revoke every token of the user.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use infra::http::error::ApiError;

pub const REFRESH_TTL: Duration = Duration::days(30);

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new refresh token for `user` in `chain` (a new chain when `None`).
pub async fn issue(
    client: &impl GenericClient,
    user: Uuid,
    chain: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    client
        .execute(
            "INSERT INTO refresh_tokens (hash, user_id, chain, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&digest(&token), &user, &chain.unwrap_or_else(Uuid::new_v4), &now, &(now + REFRESH_TTL)],
        )
        .await?;
    Ok(token)
}

/// Revokes every live refresh token of `user`.
pub async fn revoke_all(client: &impl GenericClient, user: Uuid) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user],
        )
        .await?;
    Ok(())
}

/// What presenting a refresh token comes to.
pub enum Presented {
    /// Good: it is now used; the next one belongs to this chain.
    Fresh { user: Uuid, chain: Uuid },
    /// Unknown, expired or revoked.
    Refused,
    /// Used before: the chain has just been revoked.
    Reused,
}

/// Spends `token` (inside the caller's transaction, which it row-locks).
pub async fn spend(
    client: &impl GenericClient,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Presented, ApiError> {
    let row = client
        .query_opt(
            "SELECT user_id, chain, expires_at, used_at IS NOT NULL, revoked_at IS NOT NULL \
             FROM refresh_tokens WHERE hash = $1 FOR UPDATE",
            &[&digest(token)],
        )
        .await?;
    let Some(row) = row else { return Ok(Presented::Refused) };
    let (user, chain, expires_at, used, revoked): (Uuid, Uuid, DateTime<Utc>, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if revoked || expires_at <= now {
        return Ok(Presented::Refused);
    }
    if used {
        client
            .execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE chain = $1 AND revoked_at IS NULL",
                &[&chain],
            )
            .await?;
        return Ok(Presented::Reused);
    }
    client.execute("UPDATE refresh_tokens SET used_at = $2 WHERE hash = $1", &[&digest(token), &now]).await?;
    Ok(Presented::Fresh { user, chain })
}

/// Revokes the chain of `token` if it belongs to `user` (logout).
pub async fn revoke_chain_of(client: &impl GenericClient, token: &str, user: Uuid) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE refresh_tokens SET revoked_at = now() \
             WHERE chain = (SELECT chain FROM refresh_tokens WHERE hash = $1 AND user_id = $2) AND revoked_at IS NULL",
            &[&digest(token), &user],
        )
        .await?;
    Ok(())
}
