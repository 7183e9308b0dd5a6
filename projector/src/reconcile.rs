//! `projector audit reconcile`: folds the events afresh with the domain aggregates
//! (not the projection code) and compares the result with every read model, each at
//! its own checkpoint, listing every drift.

use std::collections::{BTreeMap, HashMap};

use domain::account::{Account, AccountEvent};
use domain::product::{Product, ProductEvent};
use domain::purchase::{Purchase, PurchaseStatus};
use domain::redemption::Redemption;
use domain::{Aggregate, DomainEvent};
use futures_util::{pin_mut, TryStreamExt};
use infra::store::{self, Checkpoint};
use serde::Serialize;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::batch;
use crate::projections::Projection;

/// One disagreement between a read model and the events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub model: &'static str,
    pub key: String,
    pub field: &'static str,
    pub read_model: String,
    pub events: String,
}

/// An account's fold plus the totals the read model keeps beside it.
#[derive(Default, Clone)]
struct Totals {
    account: Account,
    earned: i64,
    spent: i64,
    movements: i64,
}

impl Aggregate for Totals {
    type Event = AccountEvent;
    const STREAM: &'static str = Account::STREAM;

    fn apply(&mut self, event: &AccountEvent) {
        let (earned, spent) = event.lifetime();
        self.earned += earned;
        self.spent += spent;
        self.movements += i64::from(event.moves_points());
        self.account.apply(event);
    }
}

/// A product's fold plus every offer it ever had (the aggregate forgets offers once
/// they are over): units sold at the offer's price and not given back, and whether it
/// was cancelled.
#[derive(Default, Clone)]
struct ProductTotals {
    product: Product,
    offers: BTreeMap<Uuid, OfferTotals>,
}

#[derive(Default, Clone)]
struct OfferTotals {
    units: Option<i64>,
    sold: i64,
    cancelled: bool,
}

impl Aggregate for ProductTotals {
    type Event = ProductEvent;
    const STREAM: &'static str = Product::STREAM;

    fn apply(&mut self, event: &ProductEvent) {
        match event {
            ProductEvent::OfferCreated { terms, .. } => {
                let offer = OfferTotals { units: terms.units, ..OfferTotals::default() };
                self.offers.insert(terms.offer_id.0, offer);
            }
            ProductEvent::OfferCancelled { offer_id, .. } => {
                self.offers.entry(offer_id.0).or_default().cancelled = true;
            }
            ProductEvent::StockReserved { offer_id: Some(id), quantity, .. } => {
                self.offers.entry(id.0).or_default().sold += quantity;
            }
            ProductEvent::StockReleased { offer_id: Some(id), quantity, .. } => {
                self.offers.entry(id.0).or_default().sold -= quantity;
            }
            _ => {}
        }
        self.product.apply(event);
    }
}

pub async fn reconcile(client: &Client) -> anyhow::Result<Vec<Drift>> {
    let mut drifts = Vec::new();
    accounts(client, &mut drifts).await?;
    products(client, &mut drifts).await?;
    orders(client, &mut drifts).await?;
    Ok(drifts)
}

/// Every stream of aggregate `A`, folded up to `upto`, by entity id. Each stream is
/// folded in its own version order, so nothing here depends on the global order.
async fn fold_all<A: Aggregate>(client: &Client, upto: Checkpoint) -> anyhow::Result<BTreeMap<Uuid, A>> {
    let events = store::read_streams_of(client, A::STREAM, upto).await?;
    pin_mut!(events);
    let mut folded: BTreeMap<Uuid, A> = BTreeMap::new();
    while let Some(e) = events.try_next().await? {
        let id = domain::entity_of::<A>(&e.stream_id).and_then(|id| Uuid::parse_str(id).ok());
        let id = id.ok_or_else(|| anyhow::anyhow!("stream {} has no entity id", e.stream_id))?;
        folded.entry(id).or_default().apply(&A::Event::decode(&e.event_type, &e.data)?);
    }
    Ok(folded)
}

fn compare<T: PartialEq + ToString>(
    drifts: &mut Vec<Drift>,
    model: &'static str,
    key: Uuid,
    field: &'static str,
    read: T,
    events: T,
) {
    if read != events {
        drifts.push(Drift {
            model,
            key: key.to_string(),
            field,
            read_model: read.to_string(),
            events: events.to_string(),
        });
    }
}

fn missing(drifts: &mut Vec<Drift>, model: &'static str, key: Uuid) {
    drifts.push(Drift {
        model,
        key: key.to_string(),
        field: "row",
        read_model: "missing".into(),
        events: "exists".into(),
    });
}

fn unexpected(drifts: &mut Vec<Drift>, model: &'static str, key: Uuid) {
    drifts.push(Drift {
        model,
        key: key.to_string(),
        field: "row",
        read_model: "exists".into(),
        events: "missing".into(),
    });
}

async fn accounts(client: &Client, drifts: &mut Vec<Drift>) -> anyhow::Result<()> {
    let (upto, _) = batch::checkpoint(client, Projection::Accounts).await?;
    let folded = fold_all::<Totals>(client, upto).await?;
    let rows = client
        .query(
            "SELECT b.user_id, b.balance, b.lifetime_earned, b.lifetime_spent, \
                    COALESCE(l.lines, 0), COALESCE(l.total, 0)::int8 \
             FROM read.balances b LEFT JOIN ( \
                 SELECT user_id, count(*) AS lines, sum(delta) AS total FROM read.ledger GROUP BY user_id) l \
               ON l.user_id = b.user_id",
            &[],
        )
        .await?;
    let mut read: HashMap<Uuid, (i64, i64, i64, i64, i64)> =
        rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))).collect();
    for (user, t) in &folded {
        let Some((balance, earned, spent, lines, total)) = read.remove(user) else {
            missing(drifts, "balances", *user);
            continue;
        };
        let want = t.account.balance();
        compare(drifts, "balances", *user, "balance", balance, want);
        compare(drifts, "balances", *user, "lifetime_earned", earned, t.earned);
        compare(drifts, "balances", *user, "lifetime_spent", spent, t.spent);
        compare(drifts, "ledger", *user, "lines", lines, t.movements);
        compare(drifts, "ledger", *user, "sum", total, want);
    }
    read.keys().for_each(|user| unexpected(drifts, "balances", *user));
    Ok(())
}

async fn products(client: &Client, drifts: &mut Vec<Drift>) -> anyhow::Result<()> {
    let (upto, _) = batch::checkpoint(client, Projection::Catalog).await?;
    let folded = fold_all::<ProductTotals>(client, upto).await?;
    offers(client, &folded, drifts).await?;
    let rows = client.query("SELECT id, on_hand, reserved, active FROM read.products", &[]).await?;
    let mut read: HashMap<Uuid, (i64, i64, bool)> =
        rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3)))).collect();
    for (id, ProductTotals { product: p, .. }) in &folded {
        let Some((on_hand, reserved, active)) = read.remove(id) else {
            missing(drifts, "products", *id);
            continue;
        };
        compare(drifts, "products", *id, "on_hand", on_hand, p.on_hand);
        compare(drifts, "products", *id, "reserved", reserved, p.reserved);
        compare(drifts, "products", *id, "active", active, p.active);
    }
    read.keys().for_each(|id| unexpected(drifts, "products", *id));
    Ok(())
}

/// Each offer's units sold and cancellation against the fold, and no offer sold past
/// its units.
async fn offers(
    client: &Client,
    folded: &BTreeMap<Uuid, ProductTotals>,
    drifts: &mut Vec<Drift>,
) -> anyhow::Result<()> {
    let rows = client
        .query("SELECT id, product_id, units_sold, cancelled_at IS NOT NULL FROM read.offers", &[])
        .await?;
    let mut read: HashMap<Uuid, (Uuid, i64, bool)> =
        rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3)))).collect();
    for (product_id, totals) in folded {
        for (id, o) in &totals.offers {
            if let Some(units) = o.units.filter(|u| o.sold > *u) {
                compare(drifts, "offers", *id, "units_sold within units", units, o.sold);
            }
            let Some((product, sold, cancelled)) = read.remove(id) else {
                missing(drifts, "offers", *id);
                continue;
            };
            compare(drifts, "offers", *id, "product_id", product, *product_id);
            compare(drifts, "offers", *id, "units_sold", sold, o.sold);
            compare(drifts, "offers", *id, "cancelled", cancelled, o.cancelled);
        }
    }
    read.keys().for_each(|id| unexpected(drifts, "offers", *id));
    Ok(())
}

async fn orders(client: &Client, drifts: &mut Vec<Drift>) -> anyhow::Result<()> {
    let (upto, _) = batch::checkpoint(client, Projection::Orders).await?;
    let purchases = fold_all::<Purchase>(client, upto).await?;
    let rows = client.query("SELECT id, status FROM read.purchases", &[]).await?;
    let mut read: HashMap<Uuid, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (id, p) in &purchases {
        let want = p.status.map_or("none", PurchaseStatus::as_str);
        match read.remove(id) {
            Some(status) => compare(drifts, "purchases", *id, "status", status.as_str(), want),
            None => missing(drifts, "purchases", *id),
        }
    }
    read.keys().for_each(|id| unexpected(drifts, "purchases", *id));

    let redemptions = fold_all::<Redemption>(client, upto).await?;
    let rows = client.query("SELECT id, status FROM read.redemptions", &[]).await?;
    let mut read: HashMap<Uuid, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (id, r) in &redemptions {
        let want = r.status.as_ref().map_or("none", |s| s.as_str());
        match read.remove(id) {
            Some(status) => compare(drifts, "redemptions", *id, "status", status.as_str(), want),
            None => missing(drifts, "redemptions", *id),
        }
    }
    read.keys().for_each(|id| unexpected(drifts, "redemptions", *id));
    Ok(())
}
