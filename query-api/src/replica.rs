//! Reads from a hot standby (`TALLY_READ_DATABASE_URL`), with the primary as fallback.
//!
//! Every read of the read models goes through [`Reads::get`]: to the replica while it
//! serves, to the primary otherwise. Writes (exposures, assignments) and the store's
//! bound check always use the primary. A monitor probes the replica every second for
//! its replay lag (`/readyz`, `tally_replica_lag_seconds`):
//! - replica down → reads fail over to the primary at once (the primary holds the same
//!   rows, only fresher), and `/readyz` says `"replica": "down"`;
//! - replica back → it serves again only once it has replayed every checkpoint
//!   read-your-writes has already seen from the primary, so a request that waited for
//!   a position never reads an older server afterwards.
//!
//! Read-your-writes itself needs nothing else: the checkpoint poller reads through
//! [`Reads`] too, so it waits on the checkpoints as the replica replayed them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use infra::http::error::ApiError;
use prometheus::{Gauge, IntGauge};

use crate::fresh::CheckpointWatch;

/// How often the monitor probes the replica.
const PROBE: Duration = Duration::from_secs(1);
/// How long a connection to the replica may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where reads go.
#[derive(Clone)]
pub struct Reads {
    primary: Pool,
    replica: Option<Arc<Replica>>,
}

struct Replica {
    pool: Pool,
    /// The replica answered its last probe.
    up: AtomicBool,
    /// Reads go to the replica.
    serving: AtomicBool,
    lag_seconds: Gauge,
    up_gauge: IntGauge,
    serving_gauge: IntGauge,
}

/// What `/readyz` says of the replica.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicaStatus {
    /// `up` or `down`.
    pub state: &'static str,
    /// `replica` or `primary`: where reads go now.
    pub reads: &'static str,
    pub lag_seconds: f64,
}

impl Reads {
    /// Every read on the primary.
    pub fn primary(primary: Pool) -> Self {
        Reads { primary, replica: None }
    }

    /// Reads on the standby at `url` (until the monitor finds it down), its gauges
    /// registered with `registry`.
    pub fn with_replica(primary: Pool, url: &str, registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|_| anyhow::anyhow!("TALLY_READ_DATABASE_URL is not a valid URL"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let pool = infra::db::pool_from_config(config, primary.status().max_size)?;
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let replica = Replica {
            pool,
            up: AtomicBool::new(true),
            serving: AtomicBool::new(true),
            lag_seconds: Gauge::new(
                "tally_replica_lag_seconds",
                "How far the read replica's replay is behind",
            )
            .expect("valid metric"),
            up_gauge: gauge("tally_replica_up", "1 while the read replica answers"),
            serving_gauge: gauge(
                "tally_replica_serving",
                "1 while reads go to the replica, 0 on the primary",
            ),
        };
        registry.register(Box::new(replica.lag_seconds.clone()))?;
        registry.register(Box::new(replica.up_gauge.clone()))?;
        registry.register(Box::new(replica.serving_gauge.clone()))?;
        replica.up_gauge.set(1);
        replica.serving_gauge.set(1);
        Ok(Reads { primary, replica: Some(Arc::new(replica)) })
    }

    /// A connection for reading the read models: the replica's while it serves.
    pub async fn get(&self) -> Result<Object, ApiError> {
        if let Some(r) = self.replica.as_deref().filter(|r| r.serving.load(Ordering::SeqCst)) {
            match r.pool.get().await {
                Ok(client) => return Ok(client),
                Err(e) => r.fail_over(&e.to_string()),
            }
        }
        Ok(self.primary.get().await?)
    }

    /// The replica's state, when one is configured.
    pub fn status(&self) -> Option<ReplicaStatus> {
        self.replica.as_deref().map(|r| ReplicaStatus {
            state: if r.up.load(Ordering::SeqCst) { "up" } else { "down" },
            reads: if r.serving.load(Ordering::SeqCst) { "replica" } else { "primary" },
            lag_seconds: r.lag_seconds.get(),
        })
    }

    /// Starts the monitor (a no-op without a replica); it ends with the runtime.
    pub fn monitor(&self, watch: CheckpointWatch) {
        let Some(replica) = self.replica.clone() else { return };
        tokio::spawn(async move {
            loop {
                replica.probe(&watch).await;
                tokio::time::sleep(PROBE).await;
            }
        });
    }
}

impl Replica {
    fn fail_over(&self, why: &str) {
        self.up.store(false, Ordering::SeqCst);
        self.up_gauge.set(0);
        if self.serving.swap(false, Ordering::SeqCst) {
            self.serving_gauge.set(0);
            tracing::warn!(error = why, "the read replica is down: reads go to the primary");
        }
    }

    async fn probe(&self, watch: &CheckpointWatch) {
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => return self.fail_over(&e.to_string()),
        };
        // Caught up (everything received is replayed) is no lag, however long ago the
        // last write was; otherwise, the age of the last replayed transaction.
        let lag = client
            .query_one(
                "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() \
                   THEN 0 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) \
                 END::float8",
                &[],
            )
            .await;
        let lag: f64 = match lag {
            Ok(row) => row.get(0),
            Err(e) => return self.fail_over(&e.to_string()),
        };
        self.lag_seconds.set(lag.max(0.0));
        self.up.store(true, Ordering::SeqCst);
        self.up_gauge.set(1);
        if self.serving.load(Ordering::SeqCst) {
            return;
        }
        match watch.switch_if_replayed(&**client, || self.serving.store(true, Ordering::SeqCst)).await {
            Ok(true) => {
                self.serving_gauge.set(1);
                tracing::info!(
                    lag_seconds = lag,
                    "the read replica is back and caught up: reads go to it again"
                );
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the replica's checkpoints"),
        }
    }
}
