//! What every handler shares.

use deadpool_postgres::Pool;
use fred::prelude::Client as Redis;

use crate::config::QueryConfig;
use crate::fresh::CheckpointWatch;
use crate::metrics::Metrics;
use crate::reco::Recommender;
use crate::replica::Reads;

#[derive(Clone)]
pub struct AppState {
    /// The primary: writes, and the store's bound.
    pub pool: Pool,
    /// Reads of the read models: the replica while it serves, else the primary.
    pub reads: Reads,
    pub redis: Redis,
    pub config: QueryConfig,
    pub metrics: Metrics,
    pub reco: Recommender,
    /// The one poller that read-your-writes waits share.
    pub checkpoints: CheckpointWatch,
}
