//! Recommendations by strategy: `rules` (the default), `ai` (an LLM provider, with the
//! rules as the fallback for every failure and a circuit breaker in front of the
//! provider) and `popular` (most redeemed in the last 7 days). Which strategy a user
//! gets is the running experiment's variant (see `crate::experiments`), else the
//! `RECO_AI_PERCENT` split. Provider answers are cached per user under a fingerprint of
//! everything they depend on (balance, history, candidates), so any change to those
//! drops them.

mod breaker;
pub mod popular;
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

/// How a recommendation is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Rules,
    Ai,
    Popular,
}

impl Strategy {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rules" => Some(Strategy::Rules),
            "ai" => Some(Strategy::Ai),
            "popular" => Some(Strategy::Popular),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Rules => "rules",
            Strategy::Ai => "ai",
            Strategy::Popular => "popular",
        }
    }
}

/// Who actually made the answer: the strategy, or `rules` when `ai` fell back.
pub type Source = Strategy;

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

    /// The strategy outside any experiment: a stable hash of the user's id against the
    /// configured share (`ai` only with a provider).
    pub fn default_strategy(&self, user: Uuid) -> Strategy {
        let digest = Sha256::digest(user.as_bytes());
        let bucket = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % 100;
        if self.provider.is_some() && bucket < u64::from(self.ai_percent) {
            Strategy::Ai
        } else {
            Strategy::Rules
        }
    }

    /// A pick by `strategy` from its `candidates` (ranked by that strategy), and who
    /// made it: `ai` without a provider, or failing, falls back to the rules.
    #[allow(clippy::too_many_arguments)]
    pub async fn recommend(
        &self,
        redis: &Redis,
        metrics: &Metrics,
        balance: &BalanceDoc,
        spendable: i64,
        strategy: Strategy,
        candidates: &[Candidate],
        limit: usize,
    ) -> (Pick, Source) {
        let (pick, source) = match (&self.provider, strategy) {
            (_, Strategy::Popular) => (popular::pick(candidates, spendable, limit), Strategy::Popular),
            (Some(provider), Strategy::Ai) if !candidates.is_empty() => {
                match self.ask_cached(redis, metrics, provider, balance, spendable, candidates, limit).await {
                    Some(pick) => (pick, Strategy::Ai),
                    None => (rules::pick(candidates, spendable, limit), Strategy::Rules),
                }
            }
            _ => (rules::pick(candidates, spendable, limit), Strategy::Rules),
        };
        metrics.recommendations.with_label_values(&[strategy.name(), source.name()]).inc();
        metrics.breaker_open.set(i64::from(self.breaker.is_open()));
        (pick, source)
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
        let ai = users.iter().filter(|u| half.default_strategy(**u) == Strategy::Ai).count();
        assert!((500..700).contains(&ai), "about 30 % of 2000, got {ai}");
        assert!(users
            .iter()
            .all(|u| half.default_strategy(*u) == Recommender::new(&config("30")).default_strategy(*u)));
        assert!(users.iter().all(|u| Recommender::new(&config("0")).default_strategy(*u) == Strategy::Rules));
        assert!(users.iter().all(|u| Recommender::new(&config("100")).default_strategy(*u) == Strategy::Ai));
        let no_provider = Recommender::new(&QueryConfig::from_lookup(|_| None).expect("config"));
        assert!(users.iter().all(|u| no_provider.default_strategy(*u) == Strategy::Rules));
    }
}
