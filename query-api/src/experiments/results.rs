//! An experiment's results per variant, computed exactly from the exposures, the
//! interactions and the redemptions read model at the time of the request.
//!
//! A **conversion** is a redemption that is not cancelled and that either names one of
//! the experiment's recommendations (`recommendation_id`: direct attribution) or is of
//! a product shown to the same user by one of the experiment's exposures at most
//! `attribution_hours` earlier, attributed to the latest such exposure. A **click** is
//! a click interaction that names one of the variant's recommendations.

use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::stats::{self, Comparison};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VariantResult {
    pub name: String,
    pub users_assigned: i64,
    pub users_exposed: i64,
    pub exposures: i64,
    pub clicks: i64,
    pub conversions: i64,
    pub converting_users: i64,
    /// converting users / users exposed (0 with nobody exposed).
    pub conversion_rate: f64,
    pub points_redeemed: i64,
    /// Against the first variant (absent on the first itself, and when either side has
    /// exposed nobody).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versus_first: Option<Comparison>,
}

const RESULTS_SQL: &str = "\
WITH ex AS ( \
  SELECT id, user_id, variant, products, at FROM behaviour.exposures \
  WHERE experiment_id IS NOT DISTINCT FROM $1 AND ($1::uuid IS NOT NULL OR experiment_key = 'default')), \
conv AS ( \
  SELECT r.user_id, r.points, COALESCE( \
    (SELECT e.variant FROM ex e WHERE e.id = r.recommendation_id), \
    (SELECT e.variant FROM ex e \
      WHERE e.user_id = r.user_id AND r.product_id = ANY(e.products) \
        AND e.at <= r.created_at AND r.created_at <= e.at + make_interval(hours => $2) \
      ORDER BY e.at DESC, e.id DESC LIMIT 1)) AS variant \
  FROM read.redemptions r \
  WHERE r.status <> 'cancelled' AND r.user_id IN (SELECT user_id FROM ex)) \
SELECT v.name, \
  CASE WHEN $1::uuid IS NULL THEN (SELECT count(DISTINCT user_id) FROM ex WHERE ex.variant = v.name) \
       ELSE (SELECT count(*) FROM behaviour.assignments a WHERE a.experiment_id = $1 AND a.variant = v.name) END, \
  (SELECT count(DISTINCT user_id) FROM ex WHERE ex.variant = v.name), \
  (SELECT count(*) FROM ex WHERE ex.variant = v.name), \
  (SELECT count(*) FROM behaviour.interactions i JOIN ex ON ex.id = i.recommendation_id \
    WHERE i.kind = 'click' AND ex.variant = v.name), \
  (SELECT count(*) FROM conv WHERE conv.variant = v.name), \
  (SELECT count(DISTINCT user_id) FROM conv WHERE conv.variant = v.name), \
  (SELECT COALESCE(sum(points), 0) FROM conv WHERE conv.variant = v.name)::int8 \
FROM unnest($3::text[]) WITH ORDINALITY AS v(name, n) ORDER BY v.n";

/// The results of `experiment` (`None`: the default split) for `variants`, in order;
/// each later variant is compared with the first.
pub async fn results(
    client: &impl GenericClient,
    experiment: Option<Uuid>,
    attribution_hours: i32,
    variants: &[String],
) -> Result<Vec<VariantResult>, tokio_postgres::Error> {
    let rows = client.query(RESULTS_SQL, &[&experiment, &attribution_hours, &variants]).await?;
    let mut out: Vec<VariantResult> = rows
        .iter()
        .map(|r| {
            let (exposed, converting): (i64, i64) = (r.get(2), r.get(6));
            VariantResult {
                name: r.get(0),
                users_assigned: r.get(1),
                users_exposed: exposed,
                exposures: r.get(3),
                clicks: r.get(4),
                conversions: r.get(5),
                converting_users: converting,
                conversion_rate: if exposed > 0 { converting as f64 / exposed as f64 } else { 0.0 },
                points_redeemed: r.get(7),
                versus_first: None,
            }
        })
        .collect();
    if let Some(first) = out.first().cloned() {
        for v in out.iter_mut().skip(1) {
            v.versus_first = stats::compare(
                first.converting_users as u64,
                first.users_exposed as u64,
                v.converting_users as u64,
                v.users_exposed as u64,
            );
        }
    }
    Ok(out)
}
