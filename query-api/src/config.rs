//! The query API's own settings, beside the shared [`Settings`](infra::config::Settings).

use std::time::Duration;

use anyhow::{bail, Context};
use infra::config::Secret;

/// Which LLM API a recommendation provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Google's `generateContent`.
    Gemini,
    /// Any OpenAI-compatible chat-completions server (OpenAI, Ollama, vLLM, llama.cpp).
    OpenAi,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// How long `X-Tally-Min-Position` may wait for the projections.
    pub min_position_wait: Duration,
    pub provider: Option<ProviderConfig>,
    /// Share of users (0–100) in the `ai` variant; the rest get `rules`.
    pub ai_percent: u8,
    /// Consecutive provider failures that open the circuit breaker…
    pub breaker_failures: u32,
    /// …and for how long it stays open.
    pub breaker_cooldown: Duration,
    /// `TALLY_READ_DATABASE_URL`: a hot standby for the read models (may carry a
    /// password, so it is a secret).
    pub read_database_url: Option<Secret>,
}

impl QueryConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let millis = |name: &str, default: u64| -> anyhow::Result<Duration> {
            let ms =
                var(name).map(|v| v.parse::<u64>().with_context(|| format!("{name} must be milliseconds")));
            Ok(Duration::from_millis(ms.transpose()?.unwrap_or(default)))
        };
        let provider = match var("RECO_PROVIDER").as_deref().map(str::trim) {
            None | Some("") | Some("rules") | Some("none") => None,
            Some(name) => {
                let (kind, default_url, default_model) = match name {
                    "gemini" => (
                        ProviderKind::Gemini,
                        "https://generativelanguage.googleapis.com",
                        "gemini-2.0-flash",
                    ),
                    "openai" => (ProviderKind::OpenAi, "https://api.openai.com/v1", "gpt-4o-mini"),
                    other => bail!("RECO_PROVIDER must be gemini, openai or rules, not {other:?}"),
                };
                Some(ProviderConfig {
                    kind,
                    base_url: var("RECO_BASE_URL").unwrap_or_else(|| default_url.into()),
                    api_key: var("RECO_API_KEY").filter(|k| !k.is_empty()).map(Secret::new),
                    model: var("RECO_MODEL").unwrap_or_else(|| default_model.into()),
                    timeout: millis("RECO_TIMEOUT_MS", 2000)?,
                })
            }
        };
        let ai_percent = match var("RECO_AI_PERCENT") {
            Some(v) => {
                v.parse::<u8>().ok().filter(|p| *p <= 100).context("RECO_AI_PERCENT must be 0..=100")?
            }
            None if provider.is_some() => 100,
            None => 0,
        };
        Ok(QueryConfig {
            min_position_wait: millis("TALLY_MIN_POSITION_WAIT_MS", 2000)?,
            provider,
            ai_percent,
            breaker_failures: var("RECO_BREAKER_FAILURES").and_then(|v| v.parse().ok()).unwrap_or(3),
            breaker_cooldown: millis("RECO_BREAKER_COOLDOWN_MS", 30_000)?,
            read_database_url: var("TALLY_READ_DATABASE_URL")
                .filter(|u| !u.trim().is_empty())
                .map(Secret::new),
        })
    }
}
