//! Bench data: catalog and customers through the command API, and bulk event seeds
//! written straight into the store (pgbench's streams, a 100,000-event account, the
//! rebuild corpus).

use chrono::Utc;
use domain::account::{AccountEvent, Allocation, CreditSource};
use domain::product::{ProductDetails, ProductEvent};
use domain::redemption::RedemptionEvent;
use domain::{CategoryId, DomainEvent, LotId, ProductId, PurchaseId, RedemptionId, UserId};
use infra::store::{self, Actor, Metadata, NewEvent, StreamAppend};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::services::ADMIN;

/// The command API as an admin sees it.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    admin: String,
    category: String,
}

pub struct Customer {
    pub id: String,
    pub token: String,
}

impl Api {
    pub async fn login(http: reqwest::Client, base: &str) -> anyhow::Result<Self> {
        let mut api = Api { http, base: base.to_owned(), admin: String::new(), category: String::new() };
        let login = api.post("/v1/auth/login", None, json!({"email": ADMIN.0, "password": ADMIN.1})).await?;
        api.admin = str_field(&login, "token")?;
        let category = api.post("/v1/categories", Some(&api.admin), json!({"name": "Bench"})).await?;
        api.category = str_field(&category, "id")?;
        Ok(api)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await?;
        anyhow::ensure!(res.status().is_success(), "{path}: {}", res.status());
        Ok(res.json().await?)
    }

    /// `n` products costing one point each, with `stock` units.
    pub async fn products(&self, n: usize, stock: i64) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let body = json!({"name": format!("Bench product {i}"), "category_id": self.category,
                              "point_cost": 1, "initial_stock": stock});
            ids.push(str_field(&self.post("/v1/products", Some(&self.admin), body).await?, "id")?);
        }
        Ok(ids)
    }

    /// One product at `point_cost` with `stock` units.
    pub async fn product(&self, point_cost: i64, stock: i64) -> anyhow::Result<String> {
        let body = json!({"name": "Golden product", "category_id": self.category, "point_cost": point_cost,
                          "initial_stock": stock});
        str_field(&self.post("/v1/products", Some(&self.admin), body).await?, "id")
    }

    /// An offer (the body of `POST /v1/offers`); its id.
    /// Subscribes a webhook endpoint; returns its id.
    pub async fn webhook_endpoint(&self, url: &str, event_types: &[&str]) -> anyhow::Result<String> {
        let body = json!({"url": url, "event_types": event_types});
        str_field(&self.post("/v1/webhook-endpoints", Some(&self.admin), body).await?, "id")
    }

    pub async fn offer(&self, body: Value) -> anyhow::Result<String> {
        str_field(&self.post("/v1/offers", Some(&self.admin), body).await?, "id")
    }

    /// A registered customer credited with `points` by an admin adjustment.
    pub async fn customer(&self, points: i64) -> anyhow::Result<Customer> {
        let email = format!("bench-{}@tally.dev", Uuid::new_v4().simple());
        let reg = self
            .post("/v1/auth/register", None, json!({"email": email, "password": "password123", "name": "B"}))
            .await?;
        let customer = Customer { id: str_field(&reg, "user_id")?, token: str_field(&reg, "token")? };
        let path = format!("/v1/accounts/{}/adjustments", customer.id);
        self.post(&path, Some(&self.admin), json!({"delta": points, "reason": "bench"})).await?;
        Ok(customer)
    }
}

fn str_field(v: &Value, field: &str) -> anyhow::Result<String> {
    v[field].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no {field} in {v}"))
}

fn new_event(e: &impl DomainEvent) -> NewEvent {
    let (event_type, data) = e.encode();
    NewEvent { event_id: Uuid::new_v4(), event_type, schema_version: 1, data }
}

fn meta() -> Metadata {
    Metadata {
        correlation_id: "bench".into(),
        causation_id: "bench".into(),
        actor: Actor::system("bench"),
        command: "Seed".into(),
    }
}

async fn append(client: &mut tokio_postgres::Client, appends: &[StreamAppend]) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    store::append(&tx, appends, &meta(), Utc::now()).await?;
    Ok(tx.commit().await?)
}

/// The 1,000 account and 1,000 product streams `scripts/pgbench/redeem.sql` works on.
pub async fn pgbench_streams(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    let event = NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "BenchEvent".into(),
        schema_version: 1,
        data: json!({ "n": 0 }),
    };
    let appends: Vec<StreamAppend> = (1..=1000)
        .flat_map(|i| [format!("bench-account-{i}"), format!("bench-product-{i}")])
        .map(|stream_id| StreamAppend {
            stream_id,
            expected_version: 0,
            events: vec![NewEvent { event_id: Uuid::new_v4(), ..event.clone() }],
        })
        .collect();
    append(client, &appends).await
}

/// Grows an opened account's stream to `length` events: one large credit, then
/// one-point debits, as years of redemptions would leave it.
pub async fn long_account(
    client: &mut tokio_postgres::Client,
    user: &str,
    length: i64,
) -> anyhow::Result<()> {
    let user_id = UserId(user.parse()?);
    let lot = LotId(Uuid::new_v4());
    let credit = AccountEvent::PointsCredited {
        user_id,
        lot_id: lot,
        points: 1_000_000_000,
        source: CreditSource::Purchase { purchase_id: PurchaseId(Uuid::new_v4()) },
        expires_at: None,
    };
    let row =
        client.query_one("SELECT version FROM es.streams WHERE stream_id = $1", &[&user_id.stream()]).await?;
    let debits = (length - row.get::<_, i64>(0) - 1).max(0) as usize;
    let debit = move |_| {
        new_event(&AccountEvent::PointsDebited {
            user_id,
            redemption_id: RedemptionId(Uuid::new_v4()),
            points: 1,
            allocations: vec![Allocation { lot_id: lot, points: 1 }],
        })
    };
    let events = std::iter::once(new_event(&credit)).chain((0..debits).map(debit));
    extend_stream(client, &user_id.stream(), events).await
}

/// Appends `events` to `stream` after its current head, 10,000 per transaction.
pub async fn extend_stream(
    client: &mut tokio_postgres::Client,
    stream: &str,
    mut events: impl Iterator<Item = NewEvent>,
) -> anyhow::Result<()> {
    let row = client.query_one("SELECT version FROM es.streams WHERE stream_id = $1", &[&stream]).await?;
    let mut version: i64 = row.get(0);
    loop {
        let chunk: Vec<NewEvent> = events.by_ref().take(10_000).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        let n = chunk.len() as i64;
        let append_one =
            StreamAppend { stream_id: stream.to_owned(), expected_version: version, events: chunk };
        append(client, &[append_one]).await?;
        version += n;
    }
}

/// `n` placed, never fulfilled redemptions of one unit on `product`: open reservations
/// its state keeps.
pub async fn open_reservations(
    client: &mut tokio_postgres::Client,
    product: &str,
    n: usize,
) -> anyhow::Result<()> {
    let product_id = ProductId(product.parse()?);
    let events = (0..n).map(move |_| {
        new_event(&ProductEvent::StockReserved {
            product_id,
            redemption_id: RedemptionId(Uuid::new_v4()),
            quantity: 1,
            offer_id: None,
            user_id: None,
        })
    });
    extend_stream(client, &product_id.stream(), events).await
}

/// `n` paid purchases of one point each on `user`: as many lots its state keeps.
pub async fn many_lots(client: &mut tokio_postgres::Client, user: &str, n: usize) -> anyhow::Result<()> {
    let user_id = UserId(user.parse()?);
    let events = (0..n).map(move |_| {
        new_event(&AccountEvent::PointsCredited {
            user_id,
            lot_id: LotId(Uuid::new_v4()),
            points: 1,
            source: CreditSource::Purchase { purchase_id: PurchaseId(Uuid::new_v4()) },
            expires_at: None,
        })
    });
    extend_stream(client, &user_id.stream(), events).await
}

const PRODUCTS: usize = 200;
/// Redemptions per account of the rebuild corpus: each appends three events.
const REDEMPTIONS: usize = 16;
/// About this many events per seeding transaction.
const EVENTS_PER_TX: usize = 1000;

/// About `events` realistic events: products listed and stocked, then accounts that
/// are credited once and place 16 redemptions each (account, product and redemption
/// events).
pub async fn rebuild_corpus(client: &mut tokio_postgres::Client, events: usize) -> anyhow::Result<()> {
    corpus(client, events.div_ceil(2 + 3 * REDEMPTIONS), REDEMPTIONS, 0).await?;
    Ok(())
}

/// `accounts` accounts, each opened, credited once and placing `redemptions`
/// redemptions (2 + 3 × `redemptions` events), on 200 products; returns `sample` of the
/// account ids, spread over the whole store.
pub async fn corpus(
    client: &mut tokio_postgres::Client,
    accounts: usize,
    redemptions: usize,
    sample: usize,
) -> anyhow::Result<Vec<UserId>> {
    let category = CategoryId(Uuid::new_v4());
    let products: Vec<ProductId> = (0..PRODUCTS).map(|_| ProductId(Uuid::new_v4())).collect();
    let listings: Vec<StreamAppend> = products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let details = ProductDetails {
                name: format!("Product {i}"),
                description: "A sturdy thing for the bench".into(),
                category_id: category,
                point_cost: 1,
                image_url: None,
                in_offer_pool: i % 5 == 0,
            };
            let listed = ProductEvent::ProductListed { product_id: *p, details };
            let stocked = ProductEvent::StockReceived {
                product_id: *p,
                quantity: 1_000_000_000,
                reason: "bench".into(),
            };
            StreamAppend {
                stream_id: p.stream(),
                expected_version: 0,
                events: vec![new_event(&listed), new_event(&stocked)],
            }
        })
        .collect();
    append(client, &listings).await?;
    let mut product_versions = vec![2i64; PRODUCTS];

    let per_tx = EVENTS_PER_TX.div_ceil(2 + 3 * redemptions);
    let every = accounts.checked_div(sample).unwrap_or(usize::MAX).max(1);
    let mut sampled = Vec::with_capacity(sample);
    for chunk in 0..accounts.div_ceil(per_tx) {
        let mut appends = Vec::new();
        let mut product_events: Vec<Vec<NewEvent>> = vec![Vec::new(); PRODUCTS];
        for a in 0..per_tx.min(accounts - chunk * per_tx) {
            let user_id = UserId(Uuid::new_v4());
            if (chunk * per_tx + a).is_multiple_of(every) && sampled.len() < sample {
                sampled.push(user_id);
            }
            let lot_id = LotId(Uuid::new_v4());
            let source = CreditSource::Purchase { purchase_id: PurchaseId(Uuid::new_v4()) };
            let mut account = vec![
                new_event(&AccountEvent::AccountOpened { user_id }),
                new_event(&AccountEvent::PointsCredited {
                    user_id,
                    lot_id,
                    points: 1000,
                    source,
                    expires_at: None,
                }),
            ];
            for r in 0..redemptions {
                let redemption_id = RedemptionId(Uuid::new_v4());
                let p = (chunk * per_tx + a + r) % PRODUCTS;
                let product_id = products[p];
                account.push(new_event(&AccountEvent::PointsDebited {
                    user_id,
                    redemption_id,
                    points: 1,
                    allocations: vec![Allocation { lot_id, points: 1 }],
                }));
                product_events[p].push(new_event(&ProductEvent::StockReserved {
                    product_id,
                    redemption_id,
                    quantity: 1,
                    offer_id: None,
                    user_id: None,
                }));
                let placed = RedemptionEvent::RedemptionPlaced {
                    redemption_id,
                    user_id,
                    product_id,
                    quantity: 1,
                    points: 1,
                    offer_id: None,
                    recommendation_id: None,
                };
                appends.push(StreamAppend {
                    stream_id: redemption_id.stream(),
                    expected_version: 0,
                    events: vec![new_event(&placed)],
                });
            }
            appends.push(StreamAppend { stream_id: user_id.stream(), expected_version: 0, events: account });
        }
        for (p, events) in product_events.into_iter().enumerate().filter(|(_, e)| !e.is_empty()) {
            let n = events.len() as i64;
            appends.push(StreamAppend {
                stream_id: products[p].stream(),
                expected_version: product_versions[p],
                events,
            });
            product_versions[p] += n;
        }
        append(client, &appends).await?;
    }
    Ok(sampled)
}
