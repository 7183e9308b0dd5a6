//! The projector's Prometheus series, served on `/metrics`.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Events committed but not yet applied, per projection.
    pub lag_events: IntGaugeVec,
    /// Age of the oldest event not yet applied, in seconds (Prometheus's base unit).
    pub lag_seconds: GaugeVec,
    /// 1 while this instance holds the projection's lock, 0 as a standby.
    pub active: IntGaugeVec,
    pub events: IntCounterVec,
    pub batch_size: HistogramVec,
    pub batch_seconds: HistogramVec,
    pub redis_errors: IntCounter,
    pub cache_repairs: IntCounterVec,
    /// Webhook delivery attempts by outcome: `delivered`, `failed` (to be retried), `dead`.
    pub webhook_attempts: IntCounterVec,
    /// Webhook deliveries queued by the fan-out.
    pub webhook_queued: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let by_projection = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["projection"]).expect("valid metric")
        };
        let m = Metrics {
            lag_events: by_projection("tally_projection_lag_events", "Events not yet applied"),
            lag_seconds: GaugeVec::new(
                Opts::new("tally_projection_lag_seconds", "Age of the oldest unapplied event"),
                &["projection"],
            )
            .expect("valid metric"),
            active: by_projection("tally_projection_active", "1 when this instance applies the projection"),
            events: IntCounterVec::new(
                Opts::new("tally_projection_events_total", "Events applied"),
                &["projection"],
            )
            .expect("valid metric"),
            batch_size: HistogramVec::new(
                HistogramOpts::new("tally_projection_batch_size", "Events per applied batch")
                    .buckets(vec![1.0, 5.0, 25.0, 100.0, 250.0, 500.0, 1000.0, 5000.0]),
                &["projection"],
            )
            .expect("valid metric"),
            batch_seconds: HistogramVec::new(
                HistogramOpts::new("tally_projection_batch_seconds", "Time to apply and commit a batch")
                    .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets")),
                &["projection"],
            )
            .expect("valid metric"),
            redis_errors: IntCounter::new("tally_redis_errors_total", "Failed Redis cache writes")
                .expect("valid metric"),
            cache_repairs: IntCounterVec::new(
                Opts::new("tally_cache_repairs_total", "Full cache rewrites from Postgres"),
                &["projection"],
            )
            .expect("valid metric"),
            webhook_attempts: IntCounterVec::new(
                Opts::new("tally_webhook_attempts_total", "Webhook delivery attempts by outcome"),
                &["outcome"],
            )
            .expect("valid metric"),
            webhook_queued: IntCounter::new("tally_webhook_queued_total", "Webhook deliveries queued")
                .expect("valid metric"),
            registry,
        };
        m.register();
        m
    }

    fn register(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 10] = [
            Box::new(self.lag_events.clone()),
            Box::new(self.lag_seconds.clone()),
            Box::new(self.active.clone()),
            Box::new(self.events.clone()),
            Box::new(self.batch_size.clone()),
            Box::new(self.batch_seconds.clone()),
            Box::new(self.redis_errors.clone()),
            Box::new(self.cache_repairs.clone()),
            Box::new(self.webhook_attempts.clone()),
            Box::new(self.webhook_queued.clone()),
        ];
        for c in collectors {
            self.registry.register(c).expect("metric names are unique");
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        infra::http::metrics::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
