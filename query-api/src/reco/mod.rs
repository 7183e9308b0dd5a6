//! Recommendations: rules by default, an LLM provider for users in the `ai` variant,
//! with the rules as the fallback for every failure and a circuit breaker in front of
//! the provider. Provider answers are cached per user under a fingerprint of
//! everything they depend on (balance, history, candidates), so any change to those
//! drops them.

mod breaker;
mod provider;
pub mod rules;

use std::sync::Arc;

use fred::prelude::{Client as Redis, Expiration, KeysInterface};
use infra::cache;
use infra::views::BalanceDoc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use breaker::Breaker;
use rules::{Candidate, Pick};

use crate::config::{ProviderConfig, QueryConfig};
use crate::metrics::Metrics;

const CACHE_TTL_SECS: i64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Rules,
    Ai,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Rules,
    Ai,
}

#[derive(Debug, Serialize)]
pub struct Recommendation {
    #[serde(flatten)]
    pub pick: Pick,
    pub source: Source,
    pub variant: Variant,
}

#[derive(Clone)]
pub struct Recommender {
    provider: Option<ProviderConfig>,
    ai_percent: u8,
    pub breaker: Arc<Breaker>,
    http: reqwest::Client,
}

impl Recommender {
    pub fn new(config: &QueryConfig) -> Self {
        Recommender {
            provider: config.provider.clone(),
            ai_percent: config.ai_percent,
            breaker: Arc::new(Breaker::new(config.breaker_failures, config.breaker_cooldown)),
            http: reqwest::Client::new(),
        }
    }

    pub fn has_provider(&self) -> bool {
        self.provider.is_some()
    }

    /// The user's variant: a stable hash of the id against the configured share.
    pub fn variant(&self, user: Uuid) -> Variant {
        let digest = Sha256::digest(user.as_bytes());
        let bucket = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % 100;
        if self.provider.is_some() && bucket < u64::from(self.ai_percent) {
            Variant::Ai
        } else {
            Variant::Rules
        }
    }

    pub async fn recommend(
        &self,
        redis: &Redis,
        metrics: &Metrics,
        balance: &BalanceDoc,
        spendable: i64,
        candidates: &[Candidate],
        limit: usize,
    ) -> Recommendation {
        let variant = self.variant(balance.user_id);
        let (pick, source) = match (&self.provider, variant) {
            (Some(provider), Variant::Ai) if !candidates.is_empty() => {
                match self.ask_cached(redis, metrics, provider, balance, spendable, candidates, limit).await {
                    Some(pick) => (pick, Source::Ai),
                    None => (rules::pick(candidates, spendable, limit), Source::Rules),
                }
            }
            _ => (rules::pick(candidates, spendable, limit), Source::Rules),
        };
        let labels = [variant_label(variant), if source == Source::Ai { "ai" } else { "rules" }];
        metrics.recommendations.with_label_values(&labels).inc();
        metrics.breaker_open.set(i64::from(self.breaker.is_open()));
        Recommendation { pick, source, variant }
    }

    #[allow(clippy::too_many_arguments)]
    async fn ask_cached(
        &self,
        redis: &Redis,
        metrics: &Metrics,
        provider: &ProviderConfig,
        balance: &BalanceDoc,
        spendable: i64,
        candidates: &[Candidate],
        limit: usize,
    ) -> Option<Pick> {
        let key = cache_key(balance, spendable, candidates, limit);
        let redis = cache::fail_fast(redis);
        if let Ok(Some(hit)) = redis.get::<Option<String>, _>(&key).await {
            if let Ok(pick) = serde_json::from_str::<Pick>(&hit) {
                return Some(pick);
            }
        }
        if !self.breaker.allow() {
            metrics.reco_fallbacks.with_label_values(&["breaker_open"]).inc();
            return None;
        }
        match provider::ask(&self.http, provider, spendable, candidates, limit).await {
            Ok(pick) => {
                self.breaker.success();
                if let Ok(json) = serde_json::to_string(&pick) {
                    let _: Result<(), _> =
                        redis.set(key, json, Some(Expiration::EX(CACHE_TTL_SECS)), None, false).await;
                }
                Some(pick)
            }
            Err(failure) => {
                self.breaker.failure();
                metrics.reco_fallbacks.with_label_values(&[failure.label()]).inc();
                tracing::warn!(reason = failure.label(), "recommendation provider failed; using rules");
                None
            }
        }
    }
}

fn variant_label(v: Variant) -> &'static str {
    match v {
        Variant::Rules => "rules",
        Variant::Ai => "ai",
    }
}

/// Changes whenever the user's balance, history or what they could redeem changes.
fn cache_key(balance: &BalanceDoc, spendable: i64, candidates: &[Candidate], limit: usize) -> String {
    let mut h = Sha256::new();
    h.update(format!("{spendable}:{}:{}:{limit}", balance.lifetime_earned, balance.lifetime_spent));
    for c in candidates {
        let offer = c.doc.offer.as_ref().map(|o| (o.id, o.point_cost));
        h.update(format!("|{}:{}:{offer:?}:{}:{}", c.doc.id, c.doc.point_cost, c.affinity, c.popularity));
    }
    infra::read_model::reco_key(balance.user_id, &hex::encode(&h.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueryConfig;

    #[test]
    fn the_variant_split_is_deterministic_and_follows_the_configured_share() {
        let config = |percent: &str| {
            let vars = [("RECO_PROVIDER", "openai"), ("RECO_AI_PERCENT", percent)];
            QueryConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
                .expect("config")
        };
        let half = Recommender::new(&config("30"));
        let users: Vec<Uuid> = (0..2000u128).map(Uuid::from_u128).collect();
        let ai = users.iter().filter(|u| half.variant(**u) == Variant::Ai).count();
        assert!((500..700).contains(&ai), "about 30 % of 2000, got {ai}");
        assert!(users.iter().all(|u| half.variant(*u) == Recommender::new(&config("30")).variant(*u)));
        assert!(users.iter().all(|u| Recommender::new(&config("0")).variant(*u) == Variant::Rules));
        assert!(users.iter().all(|u| Recommender::new(&config("100")).variant(*u) == Variant::Ai));
        let no_provider = Recommender::new(&QueryConfig::from_lookup(|_| None).expect("config"));
        assert!(users.iter().all(|u| no_provider.variant(*u) == Variant::Rules));
    }
}
