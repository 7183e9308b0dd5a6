//! A random workload of every command type through the real command API, for the
//! projector's and the query API's tests.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{body, Customer, TestApp};

/// What [`TestApp::random_workload`] created.
#[derive(Default)]
pub struct Workload {
    pub customers: Vec<Customer>,
    pub products: Vec<String>,
    pub packages: Vec<String>,
    pub redemptions: Vec<String>,
    pub offers: Vec<String>,
    pub experiments: Vec<String>,
}

/// The body of an offer on `product` live from a minute ago for an hour.
pub fn offer_body(product: &str, point_cost: i64, units: Option<i64>, limit: Option<i64>) -> Value {
    let now = chrono::Utc::now();
    json!({
        "product_id": product,
        "point_cost": point_cost,
        "starts_at": now - chrono::Duration::minutes(1),
        "ends_at": now + chrono::Duration::hours(1),
        "units": units,
        "per_customer_limit": limit,
        "title": "Golden hour",
    })
}

impl TestApp {
    /// Every kind of command, in a random order drawn from `seed`: catalog and package
    /// admin, purchases paid and failed, redemptions placed, cancelled and fulfilled,
    /// adjustments both ways, stock moves, interactions, role grants and golden-hour
    /// offers created and cancelled, experiments started and stopped, and refunds. Business
    /// rejections (not enough points, out of stock…) are part of the mix.
    /// Creates an offer on `product` live from a minute ago for an hour.
    pub async fn offer(
        &self,
        product: &str,
        point_cost: i64,
        units: Option<i64>,
        limit: Option<i64>,
    ) -> String {
        self.create("/v1/offers", offer_body(product, point_cost, units, limit)).await
    }

    pub async fn random_workload(&self, seed: u64, steps: usize) -> Workload {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut w = Workload::default();
        let category =
            self.create("/v1/categories", json!({ "name": "Home", "description": "Home things" })).await;
        for i in 0..3 {
            w.customers.push(self.register(&format!("c{i}")).await);
            w.products.push(
                self.create(
                    "/v1/products",
                    json!({ "name": format!("Lamp {i}"), "description": "A warm desk lamp", "category_id": category,
                            "point_cost": 10 + i, "initial_stock": 5 }),
                )
                .await,
            );
        }
        w.packages.push(self.package(100).await);
        let offer = self.offer(&w.products[0], 4, Some(4), Some(2)).await;
        w.offers.push(offer);
        let experiment = json!({ "key": format!("workload-{seed}"), "variants": [{ "name": "rules", "weight": 1 }, { "name": "popular", "weight": 1 }] });
        w.experiments.push(self.create("/v1/experiments", experiment).await);
        for _ in 0..steps {
            let c = &w.customers[rng.gen_range(0..w.customers.len())];
            let product = w.products[rng.gen_range(0..w.products.len())].clone();
            match rng.gen_range(0..17) {
                0 => w.customers.push(self.register("late").await),
                1 => {
                    let id =
                        self.create("/v1/categories", json!({ "name": "Garden", "description": "" })).await;
                    let p = json!({ "name": "Spade", "description": "Digs deep", "category_id": id, "point_cost": 7, "in_offer_pool": true });
                    w.products.push(self.create("/v1/products", p).await);
                }
                2 => w.packages.push(self.package(rng.gen_range(20..200)).await),
                3 | 4 => {
                    let package = &w.packages[rng.gen_range(0..w.packages.len())];
                    let res = self
                        .post("/v1/credit-purchases", Some(&c.token), json!({ "package_id": package }))
                        .await;
                    if res.status() == StatusCode::CREATED {
                        let id = body(res).await["id"].as_str().unwrap_or_default().to_owned();
                        let status = if rng.gen_bool(0.8) { "succeeded" } else { "failed" };
                        self.webhook(&json!({ "purchase_id": id, "status": status, "payment_ref": "p", "reason": "declined" }))
                            .await;
                        if status == "succeeded" && rng.gen_bool(0.2) {
                            self.webhook(
                                &json!({ "purchase_id": id, "status": "refunded", "payment_ref": "r" }),
                            )
                            .await;
                        }
                    }
                }
                5 | 6 => {
                    let q = rng.gen_range(1..3);
                    let res = self
                        .post(
                            "/v1/redemptions",
                            Some(&c.token),
                            json!({ "product_id": product, "quantity": q }),
                        )
                        .await;
                    if res.status() == StatusCode::CREATED {
                        w.redemptions.push(body(res).await["id"].as_str().unwrap_or_default().to_owned());
                    }
                }
                7 if !w.redemptions.is_empty() => {
                    let r = &w.redemptions[rng.gen_range(0..w.redemptions.len())];
                    let action = if rng.gen_bool(0.5) { "cancel" } else { "fulfil" };
                    self.post(&format!("/v1/redemptions/{r}/{action}"), Some(&self.admin), json!({})).await;
                }
                8 => {
                    let delta = rng.gen_range(-30..60);
                    let path = format!("/v1/accounts/{}/adjustments", c.id);
                    self.post(&path, Some(&self.admin), json!({ "delta": delta, "reason": "goodwill" }))
                        .await;
                }
                9 => {
                    let (kind, quantity) = if rng.gen_bool(0.7) { ("receive", 3) } else { ("adjust", -1) };
                    let path = format!("/v1/products/{product}/stock");
                    self.post(
                        &path,
                        Some(&self.admin),
                        json!({ "kind": kind, "quantity": quantity, "reason": "count" }),
                    )
                    .await;
                }
                10 => {
                    let patch = json!({ "point_cost": rng.gen_range(5..40), "description": "Now brighter" });
                    let path = format!("/v1/products/{product}");
                    self.send(reqwest::Method::PATCH, &path, Some(&self.admin), Some(patch.to_string()), &[])
                        .await;
                }
                11 => {
                    let action = if rng.gen_bool(0.5) { "delist" } else { "relist" };
                    self.post(&format!("/v1/products/{product}/{action}"), Some(&self.admin), json!({}))
                        .await;
                }
                14 => {
                    let res = self
                        .post("/v1/offers", Some(&self.admin), offer_body(&product, 4, Some(3), None))
                        .await;
                    if res.status() == StatusCode::CREATED {
                        w.offers.push(body(res).await["id"].as_str().unwrap_or_default().to_owned());
                    }
                }
                16 => {
                    let e = &w.experiments[rng.gen_range(0..w.experiments.len())];
                    self.post(&format!("/v1/experiments/{e}/stop"), Some(&self.admin), json!({})).await;
                }
                15 if !w.offers.is_empty() => {
                    let o = &w.offers[rng.gen_range(0..w.offers.len())];
                    self.post(
                        &format!("/v1/offers/{o}/cancel"),
                        Some(&self.admin),
                        json!({ "reason": "test" }),
                    )
                    .await;
                }
                12 => {
                    let kind = if rng.gen_bool(0.5) { "view" } else { "click" };
                    self.post(
                        "/v1/interactions",
                        Some(&c.token),
                        json!({ "product_id": product, "kind": kind }),
                    )
                    .await;
                }
                _ => {
                    if rng.gen_bool(0.2) && w.packages.len() > 1 {
                        let p = w.packages.remove(0);
                        self.post(&format!("/v1/credit-packages/{p}/retire"), Some(&self.admin), json!({}))
                            .await;
                    } else {
                        let path = format!("/v1/users/{}/roles", c.id);
                        self.post(&path, Some(&self.admin), json!({ "role": "auditor" })).await;
                    }
                }
            }
        }
        w
    }
}
