//! Test support (feature `testkit`): `spawn_app()` runs the real command API on port 0
//! against a fresh database, with typed request helpers and a random workload.

use domain::{Aggregate, DomainEvent, ProductId, UserId};
use infra::config::Settings;
use infra::store;
use infra::testkit::TestDb;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const ADMIN_EMAIL: &str = "admin@test.dev";
pub const ADMIN_PASSWORD: &str = "admin-password";
/// A Redis URL nothing listens on, for apps whose test brings no Redis.
pub const NO_REDIS: &str = "redis://127.0.0.1:9";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub admin: String,
    handle: actix_web::dev::ServerHandle,
}

pub struct Customer {
    pub id: String,
    pub token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// [`spawn_app`] with more environment, e.g. rate limits.
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    spawn_app_on(TestDb::new().await.expect("test database"), env).await
}

/// [`spawn_app_with`] on a given database, e.g. one on a private [`TestPostgres`].
///
/// [`TestPostgres`]: infra::testkit::TestPostgres
pub async fn spawn_app_on(db: TestDb, env: &[(&str, &str)]) -> TestApp {
    let (base, handle) = serve(&db.url, env).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
    let mut app = TestApp { base, http, db, admin: String::new(), handle };
    let login =
        app.post("/v1/auth/login", None, json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    app.admin = body(login).await["token"].as_str().expect("admin token").to_owned();
    app
}

/// Another instance of the command API on the same database as `app` (as behind a
/// load balancer), with `env`; it stops when dropped.
pub async fn another_instance(app: &TestApp, env: &[(&str, &str)]) -> Instance {
    let (base, handle) = serve(&app.db.url, env).await;
    Instance { base, handle }
}

/// A second (third, …) instance of the command API.
pub struct Instance {
    pub base: String,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Instance {
    fn drop(&mut self) {
        drop(self.handle.clone().stop(false));
    }
}

/// Runs the command API on `url` with the test secrets and `env` on top.
async fn serve(url: &str, env: &[(&str, &str)]) -> (String, actix_web::dev::ServerHandle) {
    let settings = Settings::from_lookup(|k| {
        if let Some((_, v)) = env.iter().find(|(name, _)| *name == k) {
            return Some(v.to_string());
        }
        match k {
            "DATABASE_URL" => Some(url.to_owned()),
            // No Redis unless a test brings one: each app limits on its own.
            "REDIS_URL" => Some(NO_REDIS.into()),
            "TALLY_COMMAND_ADDR" => Some("127.0.0.1:0".into()),
            "TALLY_JWT_SECRET" => Some("test-jwt-secret".into()),
            "TALLY_PAYMENT_WEBHOOK_SECRET" => Some(WEBHOOK_SECRET.into()),
            "TALLY_ADMIN_EMAIL" => Some(ADMIN_EMAIL.into()),
            "TALLY_ADMIN_PASSWORD" => Some(ADMIN_PASSWORD.into()),
            "TALLY_DB_POOL_SIZE" => Some("24".into()),
            _ => None,
        }
    })
    .expect("settings");
    let app = crate::startup::Application::build(&settings).await.expect("build app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run());
    (base, handle)
}

/// The `command-api` binary (`binary`, from the test's `env!("CARGO_BIN_EXE_command-api")`)
/// as a real process on `db_url` and a free port, with the test secrets, rate limits off
/// and `env` on top; returns it once `/healthz` answers, with its base URL.
pub async fn spawn_binary(binary: &str, db_url: &str, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let child = std::process::Command::new(binary)
        .env("DATABASE_URL", db_url)
        .env("REDIS_URL", NO_REDIS)
        .env("TALLY_COMMAND_ADDR", format!("127.0.0.1:{port}"))
        .env("TALLY_JWT_SECRET", "test-jwt-secret")
        .env("TALLY_PAYMENT_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("TALLY_RATE_LIMIT_USER", "0")
        .env("TALLY_RATE_LIMIT_ADDR", "0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn command-api");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (child, base)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

pub async fn body(res: Response) -> Value {
    res.json().await.expect("json body")
}

/// Asserts status and problem code, and that it is problem+json.
pub async fn assert_problem(res: Response, status: StatusCode, code: &str) {
    let got = res.status();
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
    let b: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!((got, b["code"].as_str()), (status, Some(code)), "body: {b}");
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    assert!(b["request_id"].as_str().is_some_and(|r| !r.is_empty()), "request_id in {b}");
}

impl TestApp {
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(reqwest::Method::POST, path, token, Some(body.to_string()), &[]).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request")
    }

    pub async fn register(&self, name: &str) -> Customer {
        let email = format!("{name}-{}@test.dev", uuid::Uuid::new_v4().simple());
        let res = self
            .post(
                "/v1/auth/register",
                None,
                json!({ "email": email, "password": "password123", "name": name }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let b = body(res).await;
        Customer {
            id: b["user_id"].as_str().expect("id").into(),
            token: b["token"].as_str().expect("token").into(),
        }
    }

    pub async fn create(&self, path: &str, payload: Value) -> String {
        let res = self.post(path, Some(&self.admin), payload).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{path}");
        body(res).await["id"].as_str().expect("id").to_owned()
    }

    pub async fn product(&self, point_cost: i64, stock: i64) -> String {
        let category = self.create("/v1/categories", json!({ "name": "Kitchen", "description": "" })).await;
        self.create(
            "/v1/products",
            json!({ "name": "Mug", "description": "A mug", "category_id": category, "point_cost": point_cost, "initial_stock": stock }),
        )
        .await
    }

    pub async fn package(&self, points: i64) -> String {
        self.create("/v1/credit-packages", json!({ "name": "Pack", "description": "", "price": "9.99", "currency": "EUR", "points": points }))
            .await
    }

    pub async fn start_purchase(&self, customer: &Customer, package: &str) -> String {
        let res =
            self.post("/v1/credit-purchases", Some(&customer.token), json!({ "package_id": package })).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        body(res).await["id"].as_str().expect("id").to_owned()
    }

    pub async fn webhook(&self, payload: &Value) -> Response {
        let raw = payload.to_string();
        let sig = sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &raw);
        self.send(
            reqwest::Method::POST,
            "/v1/payments/webhook",
            None,
            Some(raw),
            &[("Tally-Signature", &sig)],
        )
        .await
    }

    /// Registers a customer and credits them `points` through a paid purchase.
    pub async fn customer_with_points(&self, points: i64) -> Customer {
        let c = self.register("buyer").await;
        let package = self.package(points).await;
        let purchase = self.start_purchase(&c, &package).await;
        let res = self
            .webhook(&json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": "pay-1" }))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        c
    }

    /// Redeems one unit; returns the redemption's id when it was placed.
    pub async fn redeem(&self, token: &str, product: &str) -> Option<String> {
        let res =
            self.post("/v1/redemptions", Some(token), json!({ "product_id": product, "quantity": 1 })).await;
        let placed = res.status() == StatusCode::CREATED;
        placed.then_some(body(res).await["id"].as_str()?.to_owned())
    }

    /// Redeems one unit; returns the status and the problem `code`, if any.
    pub async fn redeem_one(&self, token: &str, product: &str) -> (StatusCode, Option<String>) {
        let res =
            self.post("/v1/redemptions", Some(token), json!({ "product_id": product, "quantity": 1 })).await;
        let status = res.status();
        (status, body(res).await["code"].as_str().map(str::to_owned))
    }

    /// The aggregate folded straight from the event store.
    pub async fn fold<A: Aggregate>(&self, stream: &str) -> A {
        let client = self.db.client().await.expect("client");
        let events = store::read_stream(&client, stream, 0).await.expect("read");
        let mut state = A::default();
        for e in &events {
            state.apply(&A::Event::decode(&e.event_type, &e.data).expect("decode"));
        }
        state
    }

    pub async fn event_count(&self) -> i64 {
        let client = self.db.client().await.expect("client");
        client.query_one("SELECT count(*) FROM es.events", &[]).await.expect("count").get(0)
    }

    pub async fn count_type(&self, stream: &str, event_type: &str) -> i64 {
        let client = self.db.client().await.expect("client");
        client
            .query_one(
                "SELECT count(*) FROM es.events WHERE stream_id = $1 AND event_type = $2",
                &[&stream, &event_type],
            )
            .await
            .expect("count")
            .get(0)
    }
}

pub fn sign(secret: &str, t: i64, raw: &str) -> String {
    infra::webhooks::sign(&[secret], t, raw.as_bytes())
}

pub fn product_stream(id: &str) -> String {
    ProductId::parse(id).expect("uuid").stream()
}

pub fn account_stream(id: &str) -> String {
    UserId::parse(id).expect("uuid").stream()
}

mod receiver;
mod workload;

pub use receiver::{feed_order, Mode, Received, Receiver};

pub use workload::{offer_body, Workload};
