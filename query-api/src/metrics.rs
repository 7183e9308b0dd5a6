//! The query API's Prometheus series.

use infra::http::metrics::HttpMetrics;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Cache lookups by outcome: hit, miss, error.
    pub cache: IntCounterVec,
    /// Recommendations served, by variant and source.
    pub recommendations: IntCounterVec,
    /// Provider answers that fell back to rules, by reason.
    pub reco_fallbacks: IntCounterVec,
    /// 1 while the provider's circuit breaker is open.
    pub breaker_open: IntGauge,
    /// Recommendation answers recorded as exposures by this process, by experiment
    /// (its id, or `default`) and variant.
    pub exposures: IntCounterVec,
    /// Conversions per running experiment (and `default`) and variant, as the store
    /// holds them at the scrape, across every instance.
    pub conversions: IntGaugeVec,
    /// Request latency and outcomes.
    pub http: HttpMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let registry = Registry::new();
        let m = Metrics {
            http: HttpMetrics::new(&registry),
            registry,
            cache: counter("tally_cache_lookups_total", "Redis lookups by outcome", &["outcome"]),
            recommendations: counter(
                "tally_recommendations_total",
                "Recommendations served",
                &["variant", "source"],
            ),
            reco_fallbacks: counter(
                "tally_recommendation_fallbacks_total",
                "Provider answers replaced by rules",
                &["reason"],
            ),
            breaker_open: IntGauge::new("tally_recommendation_breaker_open", "1 while the breaker is open")
                .expect("valid metric"),
            exposures: counter(
                "tally_experiment_exposures_total",
                "Recommendation answers recorded as exposures",
                &["experiment", "variant"],
            ),
            conversions: IntGaugeVec::new(
                Opts::new(
                    "tally_experiment_conversions",
                    "Conversions attributed to an experiment's variant",
                ),
                &["experiment", "variant"],
            )
            .expect("valid metric"),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(m.exposures.clone()),
            Box::new(m.conversions.clone()),
            Box::new(m.cache.clone()),
            Box::new(m.recommendations.clone()),
            Box::new(m.reco_fallbacks.clone()),
            Box::new(m.breaker_open.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// The registry, for series registered later (the replica's).
    pub fn registry(&self) -> &Registry {
        &self.registry
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
