//! An experiment: an A/B test of recommendation strategies (design §12). Each variant
//! names a strategy the query API knows and a weight; users are split by a stable hash
//! of experiment and user (in the query API), so an assignment never changes.
//! At most one experiment runs per key; the command side checks that in the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ExperimentId;
use crate::{Aggregate, Decide, DomainEvent};

/// The strategies a variant may name.
pub const STRATEGIES: [&str; 3] = ["rules", "ai", "popular"];
pub const MAX_VARIANTS: usize = 10;
pub const DEFAULT_ATTRIBUTION_HOURS: u32 = 24;
/// Thirty days.
pub const MAX_ATTRIBUTION_HOURS: u32 = 720;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// A strategy: `rules`, `ai` or `popular`.
    pub name: String,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentTerms {
    pub key: String,
    pub variants: Vec<Variant>,
    pub attribution_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ExperimentEvent {
    ExperimentStarted {
        experiment_id: ExperimentId,
        #[serde(flatten)]
        terms: ExperimentTerms,
        at: DateTime<Utc>,
    },
    ExperimentStopped {
        experiment_id: ExperimentId,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ExperimentEvent {}

#[derive(Debug, Clone, Default)]
pub struct Experiment {
    pub id: Option<ExperimentId>,
    pub terms: Option<ExperimentTerms>,
    pub running: bool,
}

impl Aggregate for Experiment {
    type Event = ExperimentEvent;
    const STREAM: &'static str = "experiment";

    fn apply(&mut self, event: &ExperimentEvent) {
        match event {
            ExperimentEvent::ExperimentStarted { experiment_id, terms, .. } => {
                *self = Experiment { id: Some(*experiment_id), terms: Some(terms.clone()), running: true }
            }
            ExperimentEvent::ExperimentStopped { .. } => self.running = false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentCommand {
    /// `another_running`: whether the store holds a running experiment with this key.
    Start {
        experiment_id: ExperimentId,
        terms: ExperimentTerms,
        another_running: bool,
        now: DateTime<Utc>,
    },
    Stop {
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExperimentError {
    #[error("the experiment does not exist")]
    NotFound,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("an experiment is already running for this key")]
    KeyTaken,
    #[error("the experiment is already stopped")]
    Stopped,
    #[error("the experiment already exists")]
    AlreadyStarted,
}

/// A key: 1 to 64 of `a-z`, `0-9`, `_`, `-`.
pub fn is_valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub fn validate_terms(t: &ExperimentTerms) -> Result<(), ExperimentError> {
    let invalid = |why| Err(ExperimentError::Invalid(why));
    if !is_valid_key(&t.key) {
        return invalid("key must be 1 to 64 of a-z, 0-9, _ and -");
    }
    if t.variants.is_empty() || t.variants.len() > MAX_VARIANTS {
        return invalid("an experiment has 1 to 10 variants");
    }
    if t.variants.iter().any(|v| !STRATEGIES.contains(&v.name.as_str())) {
        return invalid("a variant's name must be a strategy: rules, ai or popular");
    }
    let mut names: Vec<&str> = t.variants.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() != t.variants.len() {
        return invalid("variant names must be distinct");
    }
    if t.variants.iter().any(|v| !v.weight.is_finite() || v.weight < 0.0 || v.weight > 1e6) {
        return invalid("weights must be numbers from 0 to 1,000,000");
    }
    if t.variants.iter().map(|v| v.weight).sum::<f64>() <= 0.0 {
        return invalid("the weights must sum to more than zero");
    }
    if !(1..=MAX_ATTRIBUTION_HOURS).contains(&t.attribution_hours) {
        return invalid("attribution_hours must be 1 to 720");
    }
    Ok(())
}

impl Decide for Experiment {
    type Command = ExperimentCommand;
    type Error = ExperimentError;

    fn decide(&self, command: ExperimentCommand) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        match (self.id, command) {
            (None, ExperimentCommand::Start { experiment_id, terms, another_running, now }) => {
                validate_terms(&terms)?;
                if another_running {
                    return Err(ExperimentError::KeyTaken);
                }
                Ok(vec![ExperimentEvent::ExperimentStarted { experiment_id, terms, at: now }])
            }
            (Some(_), ExperimentCommand::Start { .. }) => Err(ExperimentError::AlreadyStarted),
            (None, ExperimentCommand::Stop { .. }) => Err(ExperimentError::NotFound),
            (Some(_), ExperimentCommand::Stop { .. }) if !self.running => Err(ExperimentError::Stopped),
            (Some(experiment_id), ExperimentCommand::Stop { now }) => {
                Ok(vec![ExperimentEvent::ExperimentStopped { experiment_id, at: now }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::testing::given;

    fn terms(variants: &[(&str, f64)]) -> ExperimentTerms {
        ExperimentTerms {
            key: "recommendations".into(),
            variants: variants.iter().map(|(n, w)| Variant { name: (*n).into(), weight: *w }).collect(),
            attribution_hours: 24,
        }
    }

    fn start(t: ExperimentTerms, another_running: bool) -> ExperimentCommand {
        ExperimentCommand::Start {
            experiment_id: ExperimentId(Uuid::nil()),
            terms: t,
            another_running,
            now: Utc::now(),
        }
    }

    #[test]
    fn bad_terms_and_a_taken_key_are_refused() {
        let invalid = |why| ExperimentError::Invalid(why);
        given::<Experiment>([])
            .when(start(terms(&[("rules", 1.0), ("magic", 1.0)]), false))
            .then_err(invalid("a variant's name must be a strategy: rules, ai or popular"));
        given::<Experiment>([])
            .when(start(terms(&[("rules", 0.0), ("popular", 0.0)]), false))
            .then_err(invalid("the weights must sum to more than zero"));
        given::<Experiment>([])
            .when(start(terms(&[("rules", 1.0), ("rules", 1.0)]), false))
            .then_err(invalid("variant names must be distinct"));
        given::<Experiment>([])
            .when(start(terms(&[("rules", -1.0), ("popular", 2.0)]), false))
            .then_err(invalid("weights must be numbers from 0 to 1,000,000"));
        given::<Experiment>([])
            .when(start(terms(&[("rules", 1.0), ("popular", 1.0)]), true))
            .then_err(ExperimentError::KeyTaken);
        let mut bad_key = terms(&[("rules", 1.0)]);
        bad_key.key = "Recommendations!".into();
        given::<Experiment>([])
            .when(start(bad_key, false))
            .then_err(invalid("key must be 1 to 64 of a-z, 0-9, _ and -"));
    }

    #[test]
    fn a_stopped_experiment_cannot_be_stopped_again() {
        let id = ExperimentId(Uuid::nil());
        let started = ExperimentEvent::ExperimentStarted {
            experiment_id: id,
            terms: terms(&[("rules", 1.0)]),
            at: Utc::now(),
        };
        let stopped = ExperimentEvent::ExperimentStopped { experiment_id: id, at: Utc::now() };
        given::<Experiment>([started, stopped])
            .when(ExperimentCommand::Stop { now: Utc::now() })
            .then_err(ExperimentError::Stopped);
    }
}
