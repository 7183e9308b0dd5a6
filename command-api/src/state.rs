//! What every handler shares.

use deadpool_postgres::Pool;
use infra::token::TokenKeys;

#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Pool,
    pub keys: TokenKeys,
    pub webhook_secret: WebhookSecret,
}

/// The payment provider's signing secret; never printed.
#[derive(Clone)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}
