//! What every handler shares.

use deadpool_postgres::Pool;
use infra::config::Secret;
use infra::token::TokenKeys;

#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Pool,
    pub keys: TokenKeys,
    /// The payment provider's signing secret.
    pub webhook_secret: Secret,
}
