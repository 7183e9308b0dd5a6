//! LLM providers over reqwest: Gemini's `generateContent` and OpenAI-compatible chat
//! completions. The model sees the user's balance and the candidate products and must
//! answer with JSON naming a category, product ids and a reason; the answer is then
//! checked against the candidates, so nothing unaffordable, unavailable or unknown
//! can reach a customer.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::rules::{Candidate, CategoryRef, Pick};
use crate::config::{ProviderConfig, ProviderKind};

/// Why a provider's answer was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Status(u16),
    Transport,
    InvalidAnswer,
    UnknownCategory,
}

impl Failure {
    pub fn label(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Status(429) => "rate_limited",
            Failure::Status(_) => "http_error",
            Failure::Transport => "transport",
            Failure::InvalidAnswer => "invalid_answer",
            Failure::UnknownCategory => "unknown_category",
        }
    }
}

/// How many candidates the model is shown.
const PROMPT_CANDIDATES: usize = 30;

const INSTRUCTIONS: &str = "You recommend reward products to a customer of a points programme. \
Choose one category and up to LIMIT products, only from the list given. Answer with JSON only, \
shaped {\"category_id\": \"<uuid>\", \"product_ids\": [\"<uuid>\", ...], \"reason\": \"<one friendly sentence>\"}.";

pub async fn ask(
    http: &reqwest::Client,
    config: &ProviderConfig,
    spendable: i64,
    candidates: &[Candidate],
    limit: usize,
) -> Result<Pick, Failure> {
    let shown = &candidates[..candidates.len().min(PROMPT_CANDIDATES)];
    let mut prompt = format!("The customer can spend {spendable} points. Products they can redeem now:\n");
    for c in shown {
        prompt.push_str(&format!(
            "- id {} | {} | category {} ({}) | {} points{}\n",
            c.doc.id,
            c.doc.name,
            c.doc.category_id,
            c.category_name,
            c.doc.point_cost,
            if c.doc.in_offer_pool { " | on offer" } else { "" }
        ));
    }
    let instructions = INSTRUCTIONS.replace("LIMIT", &limit.to_string());
    let request = match config.kind {
        ProviderKind::Gemini => {
            let url = format!(
                "{}/v1beta/models/{}:generateContent",
                config.base_url.trim_end_matches('/'),
                config.model
            );
            let body = json!({
                "systemInstruction": { "parts": [{ "text": instructions }] },
                "contents": [{ "role": "user", "parts": [{ "text": prompt }] }],
                "generationConfig": { "responseMimeType": "application/json", "temperature": 0.2 },
            });
            let req = http.post(url).json(&body);
            match &config.api_key {
                Some(key) => req.header("x-goog-api-key", key.expose()),
                None => req,
            }
        }
        ProviderKind::OpenAi => {
            let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
            let body = json!({
                "model": config.model,
                "messages": [
                    { "role": "system", "content": instructions },
                    { "role": "user", "content": prompt },
                ],
                "response_format": { "type": "json_object" },
                "temperature": 0.2,
            });
            let req = http.post(url).json(&body);
            match &config.api_key {
                Some(key) => req.bearer_auth(key.expose()),
                None => req,
            }
        }
    };
    let res = request.timeout(config.timeout).send().await.map_err(transport)?;
    if !res.status().is_success() {
        return Err(Failure::Status(res.status().as_u16()));
    }
    let body: Value = res.json().await.map_err(transport)?;
    let text = match config.kind {
        ProviderKind::Gemini => body["candidates"][0]["content"]["parts"][0]["text"].as_str(),
        ProviderKind::OpenAi => body["choices"][0]["message"]["content"].as_str(),
    }
    .ok_or(Failure::InvalidAnswer)?;
    validate(text, candidates, limit)
}

fn transport(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_decode() {
        Failure::InvalidAnswer
    } else {
        Failure::Transport
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    category_id: Uuid,
    product_ids: Vec<Uuid>,
    reason: String,
}

/// Accepts the model's answer only when it stays inside the candidates.
pub fn validate(text: &str, candidates: &[Candidate], limit: usize) -> Result<Pick, Failure> {
    let text = text.trim().trim_start_matches("```json").trim_start_matches("```").trim_end_matches("```");
    let answer: Answer = serde_json::from_str(text.trim()).map_err(|_| Failure::InvalidAnswer)?;
    let category = candidates
        .iter()
        .find(|c| c.doc.category_id == answer.category_id)
        .map(|c| CategoryRef { id: c.doc.category_id, name: c.category_name.clone() })
        .ok_or(Failure::UnknownCategory)?;
    let reason = answer.reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(Failure::InvalidAnswer);
    }
    let mut seen = HashSet::new();
    let mut products = Vec::new();
    for id in answer.product_ids.into_iter().filter(|id| seen.insert(*id)) {
        let candidate = candidates.iter().find(|c| c.doc.id == id).ok_or(Failure::InvalidAnswer)?;
        products.push(candidate.doc.clone());
    }
    if products.is_empty() {
        return Err(Failure::InvalidAnswer);
    }
    products.truncate(limit);
    Ok(Pick { category: Some(category), reason: reason.to_owned(), products })
}
