//! `insights`: what recommendations rank by. Per user and category, how often the user
//! redeemed, clicked and viewed products of that category; per product, the same
//! counts over every user. A product's category is the one it had when the user acted.
//! Also the experiments (design §12), as they start and stop.
//!
//! Interactions recorded since experiments are behaviour data (`infra::behaviour`),
//! counted there; the interaction events of the first release are still counted here.

use std::collections::HashMap;

use domain::experiment::ExperimentEvent;
use domain::interactions::{InteractionEvent, InteractionKind};
use domain::product::ProductEvent;
use domain::redemption::RedemptionEvent;
use infra::store::RecordedEvent;
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::{decode, load, replace_on, write, Changes, ProjectError};

#[derive(Debug, Serialize, Deserialize)]
struct ProductCategory {
    product_id: Uuid,
    category_id: Uuid,
}

/// Counts added by this batch.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Counts {
    redeemed: i64,
    clicks: i64,
    views: i64,
}

#[derive(Serialize)]
struct AffinityRow {
    user_id: Uuid,
    category_id: Uuid,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Serialize)]
struct PopularityRow {
    product_id: Uuid,
    #[serde(flatten)]
    counts: Counts,
}

const ADD_COUNTS: &str = "DO UPDATE SET redeemed = t.redeemed + EXCLUDED.redeemed, \
     clicks = t.clicks + EXCLUDED.clicks, views = t.views + EXCLUDED.views";

pub(super) async fn apply(tx: &Transaction<'_>, events: &[RecordedEvent]) -> Result<Changes, ProjectError> {
    apply_experiments(tx, events).await?;
    // Every product's category as this batch leaves it, and which of them it changed.
    let mut categories: HashMap<Uuid, Uuid> = HashMap::new();
    let mut moved: HashMap<Uuid, Uuid> = HashMap::new();
    for (_, event) in decode::<domain::product::Product>(events)? {
        let category = match &event {
            ProductEvent::ProductListed { details, .. } => Some(details.category_id),
            ProductEvent::ProductRevised { changes, .. } => changes.category_id,
            _ => None,
        };
        if let Some(category) = category {
            categories.insert(event.product_id().0, category.0);
            moved.insert(event.product_id().0, category.0);
        }
    }

    // (user, product, counts) in event order.
    let mut acts: Vec<(Uuid, Uuid, Counts)> = Vec::new();
    for (_, event) in decode::<domain::redemption::Redemption>(events)? {
        if let RedemptionEvent::RedemptionPlaced { user_id, product_id, quantity, .. } = event {
            acts.push((user_id.0, product_id.0, Counts { redeemed: quantity, ..Counts::default() }));
        }
    }
    for (_, InteractionEvent::InteractionRecorded { user_id, product_id, kind }) in
        decode::<domain::interactions::Interactions>(events)?
    {
        let counts = match kind {
            InteractionKind::Click => Counts { clicks: 1, ..Counts::default() },
            InteractionKind::View => Counts { views: 1, ..Counts::default() },
            InteractionKind::Wishlist => continue,
        };
        acts.push((user_id.0, product_id.0, counts));
    }
    if moved.is_empty() && acts.is_empty() {
        return Ok(Changes::default());
    }

    // Categories of products listed before this batch. Products are listed before
    // anyone can act on them, so within a batch the map above already has the rest.
    let mut missing: Vec<Uuid> = acts.iter().map(|a| a.1).filter(|p| !categories.contains_key(p)).collect();
    missing.sort_unstable();
    missing.dedup();
    for known in load::<ProductCategory>(tx, "product_categories", "product_id", &missing).await? {
        categories.insert(known.product_id, known.category_id);
    }

    let mut affinity: HashMap<(Uuid, Uuid), Counts> = HashMap::new();
    let mut popularity: HashMap<Uuid, Counts> = HashMap::new();
    for (user, product, counts) in acts {
        add(popularity.entry(product).or_default(), counts);
        if let Some(category) = categories.get(&product) {
            add(affinity.entry((user, *category)).or_default(), counts);
        }
    }

    let cols = "product_id, category_id";
    let moved: Vec<ProductCategory> = moved
        .into_iter()
        .map(|(product_id, category_id)| ProductCategory { product_id, category_id })
        .collect();
    write(tx, "product_categories", cols, &replace_on("product_id", cols), &moved).await?;
    let rows: Vec<AffinityRow> = affinity
        .into_iter()
        .map(|((user_id, category_id), counts)| AffinityRow { user_id, category_id, counts })
        .collect();
    let cols = "user_id, category_id, redeemed, clicks, views";
    write(tx, "category_affinity", cols, &format!("ON CONFLICT (user_id, category_id) {ADD_COUNTS}"), &rows)
        .await?;
    let rows: Vec<PopularityRow> =
        popularity.into_iter().map(|(product_id, counts)| PopularityRow { product_id, counts }).collect();
    let cols = "product_id, redeemed, clicks, views";
    write(tx, "product_popularity", cols, &format!("ON CONFLICT (product_id) {ADD_COUNTS}"), &rows).await?;
    Ok(Changes::default())
}

fn add(total: &mut Counts, more: Counts) {
    total.redeemed += more.redeemed;
    total.clicks += more.clicks;
    total.views += more.views;
}

/// Experiments as they start and stop (few: one statement each).
async fn apply_experiments(tx: &Transaction<'_>, events: &[RecordedEvent]) -> Result<(), ProjectError> {
    for (_, event) in decode::<domain::experiment::Experiment>(events)? {
        match event {
            ExperimentEvent::ExperimentStarted { experiment_id, terms, at } => {
                let variants = serde_json::to_value(&terms.variants)?;
                tx.execute(
                    "INSERT INTO experiments (id, key, variants, attribution_hours, started_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&experiment_id.0, &terms.key, &variants, &(terms.attribution_hours as i32), &at],
                )
                .await?;
            }
            ExperimentEvent::ExperimentStopped { experiment_id, at } => {
                tx.execute("UPDATE experiments SET stopped_at = $2 WHERE id = $1", &[&experiment_id.0, &at])
                    .await?;
            }
        }
    }
    Ok(())
}
