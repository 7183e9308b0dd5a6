//! What every handler shares.

use std::sync::Arc;

use deadpool_postgres::Pool;
use infra::config::Secret;
use infra::states::StateCache;
use infra::token::TokenKeys;

use crate::hot::GroupCommit;
use crate::passwords::Passwords;
use crate::routes::redemptions::PlaceRedemption;
use crate::throttle::LoginThrottle;

#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Pool,
    pub keys: TokenKeys,
    /// The payment provider's signing secret.
    pub webhook_secret: Secret,
    /// Outbound webhook endpoints may target private addresses (tests only).
    pub webhook_allow_private: bool,
    pub passwords: Passwords,
    pub throttle: Arc<LoginThrottle>,
    /// Redemptions of the same product share a transaction (group commit).
    pub redemptions: Arc<GroupCommit<PlaceRedemption>>,
    /// Recent stream states, and the snapshots written behind (see `infra::states`).
    pub states: Arc<StateCache>,
}
