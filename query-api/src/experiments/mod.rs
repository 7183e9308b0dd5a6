//! Experiments on the read side (design §12): which one runs for a key, which variant a
//! user is in, and the results per variant.
//!
//! A user's variant is a stable hash of the experiment's id and the user's id, mapped
//! onto the variants' cumulative weights: the same user always lands in the same
//! variant, on every instance, without anything stored.

pub mod results;
pub mod stats;

use chrono::{DateTime, Utc};
use domain::experiment::Variant;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// The experiment key recommendations run under.
pub const RECOMMENDATIONS: &str = "recommendations";
/// How exposures without a running experiment are reported.
pub const DEFAULT_KEY: &str = "default";

#[derive(Debug, Clone)]
pub struct Experiment {
    pub id: Uuid,
    pub key: String,
    pub variants: Vec<Variant>,
    pub attribution_hours: i32,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, key, variants, attribution_hours, started_at, stopped_at";

fn from_row(r: &tokio_postgres::Row) -> Experiment {
    Experiment {
        id: r.get(0),
        key: r.get(1),
        variants: serde_json::from_value(r.get(2)).unwrap_or_default(),
        attribution_hours: r.get(3),
        started_at: r.get(4),
        stopped_at: r.get(5),
    }
}

pub async fn load(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Experiment>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM read.experiments WHERE id = $1");
    Ok(client.query_opt(&sql, &[&id]).await?.map(|r| from_row(&r)))
}

/// The experiment running for `key`, if any.
pub async fn running(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<Experiment>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM read.experiments WHERE key = $1 AND stopped_at IS NULL LIMIT 1");
    Ok(client.query_opt(&sql, &[&key]).await?.map(|r| from_row(&r)))
}

/// Every running experiment.
pub async fn all_running(client: &impl GenericClient) -> Result<Vec<Experiment>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM read.experiments WHERE stopped_at IS NULL ORDER BY started_at");
    Ok(client.query(&sql, &[]).await?.iter().map(from_row).collect())
}

/// `user`'s variant of `experiment`.
pub fn assign(experiment: Uuid, user: Uuid, variants: &[Variant]) -> Option<&Variant> {
    let total: f64 = variants.iter().map(|v| v.weight).sum();
    if total <= 0.0 {
        return None;
    }
    let digest = Sha256::new().chain_update(experiment.as_bytes()).chain_update(user.as_bytes()).finalize();
    let bucket = u64::from_be_bytes(digest[..8].try_into().ok()?);
    // A point in [0, total): 53 bits of the hash, as a fraction of the weights' sum.
    let point = (bucket >> 11) as f64 / (1u64 << 53) as f64 * total;
    let mut upto = 0.0;
    for v in variants {
        upto += v.weight;
        if point < upto && v.weight > 0.0 {
            return Some(v);
        }
    }
    variants.iter().rev().find(|v| v.weight > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants(weights: &[(&str, f64)]) -> Vec<Variant> {
        weights.iter().map(|(n, w)| Variant { name: (*n).into(), weight: *w }).collect()
    }

    #[test]
    fn assignment_is_sticky_and_follows_the_weights() {
        let v = variants(&[("rules", 3.0), ("popular", 1.0), ("ai", 0.0)]);
        let experiment = Uuid::from_u128(7);
        let users: Vec<Uuid> = (0..4000u128).map(Uuid::from_u128).collect();
        let picked: Vec<&str> =
            users.iter().map(|u| assign(experiment, *u, &v).expect("a variant").name.as_str()).collect();
        let popular = picked.iter().filter(|n| **n == "popular").count();
        assert!((850..1150).contains(&popular), "about a quarter of 4000, got {popular}");
        assert!(!picked.contains(&"ai"), "a zero weight gets nobody");
        let again: Vec<&str> =
            users.iter().map(|u| assign(experiment, *u, &v).expect("a variant").name.as_str()).collect();
        assert_eq!(picked, again);
        let other: Vec<&str> = users
            .iter()
            .map(|u| assign(Uuid::from_u128(8), *u, &v).expect("a variant").name.as_str())
            .collect();
        assert_ne!(picked, other, "another experiment splits users afresh");
    }
}
