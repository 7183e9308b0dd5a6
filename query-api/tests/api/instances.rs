//! Two command APIs, two projectors and two query APIs on one store, as behind a load
//! balancer: the races that must never oversell, overspend, double-credit or apply a
//! key twice, with requests spread over both command APIs, and every answer read back
//! on both query APIs at the position the *other* instance returned.

use command_api::testkit::{another_instance, sign, Instance, WEBHOOK_SECRET};
use futures_util::future::join_all;
use infra::store::Checkpoint;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::*;

struct Pair {
    s: Stack,
    cmd_b: Instance,
    query_b: String,
    projector_b: CancellationToken,
    query_b_handle: actix_web::dev::ServerHandle,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.projector_b.cancel();
        drop(self.query_b_handle.stop(false));
    }
}

/// A command's outcome: status, problem code, position, body.
type Outcome = (StatusCode, Option<String>, Option<String>, Value);

async fn pair() -> Pair {
    // A projector that takes over needs a moment: reads may wait for it.
    let env = [("TALLY_MIN_POSITION_WAIT_MS", "5000".to_owned())];
    let s = stack_with(&env).await;
    let cmd_b = another_instance(&s.cmd, &[("TALLY_RATE_LIMIT_USER", "0")]).await;
    let redis_url = s.redis.url.clone();
    let projector_b = start_projector(&s.cmd.db.url, &redis_url).await;
    let (query_b, query_b_handle) = start_query(&s.cmd.db.url, &redis_url, &env).await;
    Pair { s, cmd_b, query_b, projector_b, query_b_handle }
}

impl Pair {
    /// Request `i` goes to command API `i % 2`.
    async fn command(
        &self,
        i: usize,
        path: &str,
        token: Option<&str>,
        body: String,
        headers: &[(&str, &str)],
    ) -> Outcome {
        let base = if i.is_multiple_of(2) { &self.s.cmd.base } else { &self.cmd_b.base };
        let mut req = self.s.http.post(format!("{base}{path}")).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.body(body).send().await.expect("request");
        let status = res.status();
        let position = res.headers().get("x-tally-position").map(|v| v.to_str().expect("ascii").to_owned());
        let replayed = res.headers().contains_key("idempotent-replayed");
        let mut body: Value = res.json().await.unwrap_or(Value::Null);
        body["replayed"] = json!(replayed);
        (status, body["code"].as_str().map(str::to_owned), position, body)
    }

    async fn redeem(&self, i: usize, token: &str, product: &str, quantity: i64) -> Outcome {
        let body = json!({ "product_id": product, "quantity": quantity }).to_string();
        self.command(i, "/v1/redemptions", Some(token), body, &[]).await
    }

    /// `path` read on both query APIs at `at`: the two answers, which must agree.
    async fn read_both(&self, path: &str, token: &str, at: &str) -> Value {
        let a = self.s.read(path, token, at).await;
        let res = self
            .s
            .http
            .get(format!("{}{path}", self.query_b))
            .bearer_auth(token)
            .header("X-Tally-Min-Position", at)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{path} on the second query API");
        assert_eq!(res.json::<Value>().await.expect("json"), a, "{path}: the two query APIs agree");
        a
    }
}

/// The newest of the positions the commands returned.
fn latest(outcomes: &[Outcome]) -> String {
    let newest = outcomes.iter().filter_map(|o| Checkpoint::parse_token(o.2.as_deref()?)).max();
    newest.expect("a position").token()
}

fn count(outcomes: &[Outcome], status: StatusCode, code: Option<&str>) -> usize {
    outcomes.iter().filter(|o| o.0 == status && o.1.as_deref() == code).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_product_and_an_overspend_spread_over_two_of_each_service_hold_their_invariants() {
    let p = pair().await;
    let product = p.s.cmd.product(100, 10).await;
    let customers = join_all((0..40).map(|_| p.s.cmd.customer_with_points(100))).await;
    let results =
        join_all(customers.iter().enumerate().map(|(i, c)| p.redeem(i, &c.token, &product, 1))).await;
    assert_eq!(count(&results, StatusCode::CREATED, None), 10, "{results:?}");
    assert_eq!(count(&results, StatusCode::UNPROCESSABLE_ENTITY, Some("out_of_stock")), 30);
    let at = latest(&results);
    let doc = p.read_both(&format!("/v1/products/{product}"), &customers[0].token, &at).await;
    assert_eq!(doc["available"], 0);

    // The first projector goes away: the second takes over, and reads still see writes.
    p.s.stop_projector();
    let c = p.s.cmd.customer_with_points(100).await;
    let cheap = p.s.cmd.product(20, 100).await;
    let results = join_all((0..30).map(|i| p.redeem(i, &c.token, &cheap, 1))).await;
    assert_eq!(count(&results, StatusCode::CREATED, None), 5, "{results:?}");
    assert_eq!(count(&results, StatusCode::UNPROCESSABLE_ENTITY, Some("insufficient_points")), 25);
    let at = latest(&results);
    assert_eq!(p.read_both("/v1/me/balance", &c.token, &at).await["balance"], 0);
    assert_eq!(p.read_both(&format!("/v1/products/{cheap}"), &c.token, &at).await["available"], 95);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_storm_and_a_repeated_key_spread_over_two_of_each_service_have_one_effect() {
    let p = pair().await;
    let c = p.s.cmd.register("buyer").await;
    let package = p.s.cmd.package(250).await;
    let purchase = p.s.cmd.start_purchase(&c, &package).await;
    let raw = json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": "pay-42" }).to_string();
    let sig = sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &raw);
    let headers = [("Tally-Signature", sig.as_str())];
    let deliveries =
        join_all((0..20).map(|i| p.command(i, "/v1/payments/webhook", None, raw.clone(), &headers))).await;
    assert_eq!(count(&deliveries, StatusCode::OK, None), 20, "{deliveries:?}");
    let stream = command_api::testkit::account_stream(&c.id);
    assert_eq!(p.s.cmd.count_type(&stream, "PointsCredited").await, 1);
    assert_eq!(p.read_both("/v1/me/balance", &c.token, &latest(&deliveries)).await["balance"], 250);

    let product = p.s.cmd.product(10, 100).await;
    let body = json!({ "product_id": product, "quantity": 2 }).to_string();
    let tries = join_all((0..10).map(|i| {
        p.command(i, "/v1/redemptions", Some(&c.token), body.clone(), &[("Idempotency-Key", "k-1")])
    }))
    .await;
    assert_eq!(count(&tries, StatusCode::CREATED, None), 10, "{tries:?}");
    assert_eq!(
        tries.iter().filter(|t| t.3["replayed"] == false).count(),
        1,
        "one fresh answer, nine replays"
    );
    let without_flag = |t: &Outcome| {
        let mut b = t.3.clone();
        b["replayed"] = Value::Null;
        (t.2.clone(), b)
    };
    assert!(tries.iter().all(|t| without_flag(t) == without_flag(&tries[0])), "{tries:?}");
    assert_eq!(p.s.cmd.count_type(&stream, "PointsDebited").await, 1);
    assert_eq!(p.read_both("/v1/me/balance", &c.token, &latest(&tries)).await["balance"], 230);
}
