//! The whole stack for a test: the real command API, the projector daemon and the
//! query API, on a fresh database and a private Redis.

use command_api::testkit::{spawn_app_on, TestApp};
use infra::config::Settings;
use infra::testkit::{TestDb, TestRedis};
use projector::runner;
use query_api::config::QueryConfig;
use reqwest::Response;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub struct Stack {
    pub cmd: TestApp,
    pub query: String,
    pub redis: TestRedis,
    pub http: reqwest::Client,
    projector: CancellationToken,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.projector.cancel();
        drop(self.handle.stop(false));
    }
}

pub async fn stack() -> Stack {
    stack_with(&[]).await
}

/// A stack whose query API also sees `env` (e.g. the recommendation provider).
pub async fn stack_with(env: &[(&str, String)]) -> Stack {
    stack_on(TestDb::new().await.expect("test database"), env).await
}

/// [`stack_with`] on a given database, e.g. one on a private server with a replica.
pub async fn stack_on(db: TestDb, env: &[(&str, String)]) -> Stack {
    // The tests drive the command API as fast as they can, some as one admin.
    let cmd =
        spawn_app_on(db, &[("TALLY_RATE_LIMIT_USER", "0"), ("TALLY_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let redis = TestRedis::start().await.expect("redis");
    // A test may bring its own Redis (a cluster); the private one then stands idle.
    let redis_url =
        env.iter().find(|(k, _)| *k == "REDIS_URL").map_or_else(|| redis.url.clone(), |(_, v)| v.clone());
    let projector = start_projector(&cmd.db.url, &redis_url).await;
    let (query, handle) = start_query(&cmd.db.url, &redis_url, env).await;
    Stack { cmd, query, redis, http: reqwest::Client::new(), projector, handle }
}

/// `projector run` in this process on `db_url`; cancel the token to stop it.
pub async fn start_projector(db_url: &str, redis_url: &str) -> CancellationToken {
    // Webhook receivers are local; retries come within 2 s so outages heal quickly.
    let mut config = runner::RunConfig::new(db_url);
    config.dispatch.allow_private = true;
    config.dispatch.retry_cap = std::time::Duration::from_secs(2);
    runner::spawn_with(config, redis_url).await.expect("projector")
}

/// A query API on `db_url` and `redis_url` with `env` on top: its base URL and handle.
pub async fn start_query(
    db_url: &str,
    redis_url: &str,
    env: &[(&str, String)],
) -> (String, actix_web::dev::ServerHandle) {
    let lookup = |k: &str| -> Option<String> {
        if let Some((_, v)) = env.iter().find(|(name, _)| *name == k) {
            return Some(v.clone());
        }
        match k {
            "DATABASE_URL" => Some(db_url.to_owned()),
            "REDIS_URL" => Some(redis_url.to_owned()),
            "TALLY_QUERY_ADDR" => Some("127.0.0.1:0".into()),
            "TALLY_JWT_SECRET" => Some("test-jwt-secret".into()),
            "TALLY_PAYMENT_WEBHOOK_SECRET" => Some("unused".into()),
            _ => None,
        }
    };
    let settings = Settings::from_lookup(lookup).expect("settings");
    let config = QueryConfig::from_lookup(lookup).expect("query config");
    let app = query_api::Application::build(&settings, config).await.expect("query api");
    let query = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run());
    (query, handle)
}

impl Stack {
    /// Stops the projector: positions appended after this are never applied.
    pub fn stop_projector(&self) {
        self.projector.cancel();
    }

    pub async fn get(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Response {
        let mut req = self.http.get(format!("{}{}", self.query, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut req = self.http.post(format!("{}{}", self.query, path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// GET with `X-Tally-Min-Position`, expecting 200; the JSON body.
    pub async fn read(&self, path: &str, token: &str, position: &str) -> Value {
        let res = self.get(path, Some(token), &[("X-Tally-Min-Position", position)]).await;
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.expect("json")
    }

    /// `POST /v1/recommendations` with `limit`, after everything written so far;
    /// expects 200 and returns the answer.
    pub async fn recommend(&self, token: &str, limit: i64) -> Value {
        let at = self.head().await;
        let res = self
            .http
            .post(format!("{}/v1/recommendations", self.query))
            .bearer_auth(token)
            .header("X-Tally-Min-Position", at)
            .json(&serde_json::json!({ "limit": limit }))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    /// The position of the newest event (what a client would have from its last command).
    pub async fn head(&self) -> String {
        let client = self.cmd.db.client().await.expect("client");
        let row = client
            .query_one("SELECT tx_id::text, position FROM es.events ORDER BY position DESC LIMIT 1", &[])
            .await
            .expect("head");
        format!("{}.{}", row.get::<_, &str>(0), row.get::<_, i64>(1))
    }
}

pub fn position(res: &Response) -> String {
    res.headers().get("x-tally-position").expect("X-Tally-Position").to_str().expect("ascii").to_owned()
}

/// Every service of every stack runs in this process: their logs (JSON, the Tally
/// crates at `debug`) all go to this one file, for tests that check what is logged.
pub fn captured_logs() -> &'static std::path::Path {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("tally-query-api-tests-{}.log", std::process::id()));
        let file = std::fs::File::create(&path).expect("log file");
        let filter =
            "info,infra=debug,command_api=debug,query_api=debug,projector=debug,tokio_postgres=debug";
        infra::telemetry::init_with(filter, std::sync::Mutex::new(file));
        path
    })
}
