//! What every handler shares.

use deadpool_postgres::Pool;
use fred::prelude::Client as Redis;

use crate::config::QueryConfig;
use crate::fresh::CheckpointWatch;
use crate::metrics::Metrics;
use crate::reco::Recommender;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub redis: Redis,
    pub config: QueryConfig,
    pub metrics: Metrics,
    pub reco: Recommender,
    /// The one poller that read-your-writes waits share.
    pub checkpoints: CheckpointWatch,
}
