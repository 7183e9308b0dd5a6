//! `scripts/dr-drill`'s workload: every command type against a running command API, in
//! a loop, for a given number of seconds, and a log of each acknowledged command.
//!
//! Usage: `dr_workload <command-api base URL> <seconds> <log file>`, with the admin
//! login in `TALLY_ADMIN_EMAIL` / `TALLY_ADMIN_PASSWORD` and the payment secret in
//! `TALLY_PAYMENT_WEBHOOK_SECRET`. Each log line is CSV, for `psql`'s `\copy`:
//! `command,sent_at,acked_at,tx_id,position` (times in unix microseconds), so the drill
//! can tell which commands must survive a restore to a point in time (acknowledged
//! before it) and which must not (sent after it).

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

struct Client {
    http: reqwest::Client,
    base: String,
    secret: String,
    log: std::io::BufWriter<std::fs::File>,
    acknowledged: usize,
}

fn micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros())
}

impl Client {
    /// POSTs one command; logs and returns its body when it succeeded.
    async fn command(
        &mut self,
        name: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, name, path, token, body).await
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        name: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        let (sent_at, acked_at, body) = self.request(method, name, path, token, body).await?;
        if let Some((tx_id, position)) = body["position"].as_str().and_then(|p| p.split_once('.')) {
            writeln!(self.log, "{name},{sent_at},{acked_at},{tx_id},{position}")?;
            self.acknowledged += 1;
        }
        Ok(body)
    }

    /// A request whose acknowledgement the drill does not check (no event appended).
    async fn unlogged(
        &mut self,
        method: reqwest::Method,
        name: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        Ok(self.request(method, name, path, token, body).await?.2)
    }

    /// Sends; the send and acknowledgement times and the answer, which must be a 2xx.
    async fn request(
        &mut self,
        method: reqwest::Method,
        name: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<(u128, u128, Value)> {
        let raw = body.to_string();
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, url).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if path == "/v1/payments/webhook" {
            let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())?;
            mac.update(format!("{t}.{raw}").as_bytes());
            req = req
                .header("Tally-Signature", format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes())));
        }
        let sent_at = micros();
        let res = req.body(raw).send().await?;
        let acked_at = micros();
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        ensure!(status.is_success(), "{name}: {status} {body}");
        Ok((sent_at, acked_at, body))
    }
}

fn id(v: &Value) -> anyhow::Result<String> {
    v["id"].as_str().map(str::to_owned).context("no id in the answer")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    ensure!(args.len() == 4, "usage: dr_workload <base URL> <seconds> <log file>");
    let seconds: f64 = args[2].parse().context("seconds")?;
    let mut c = Client {
        http: reqwest::Client::new(),
        base: args[1].trim_end_matches('/').to_owned(),
        secret: std::env::var("TALLY_PAYMENT_WEBHOOK_SECRET").context("TALLY_PAYMENT_WEBHOOK_SECRET")?,
        log: std::io::BufWriter::new(std::fs::File::create(&args[3])?),
        acknowledged: 0,
    };
    let login = json!({
        "email": std::env::var("TALLY_ADMIN_EMAIL").context("TALLY_ADMIN_EMAIL")?,
        "password": std::env::var("TALLY_ADMIN_PASSWORD").context("TALLY_ADMIN_PASSWORD")?,
    });
    let res = c.http.post(format!("{}/v1/auth/login", c.base)).json(&login).send().await?;
    let admin = res.json::<Value>().await?["token"].as_str().context("admin login")?.to_owned();
    let admin = admin.as_str();

    let category =
        id(&c.command("CreateCategory", "/v1/categories", Some(admin), json!({ "name": "Drill" })).await?)?;
    let product =
        json!({ "name": "Drill mug", "category_id": category, "point_cost": 10, "initial_stock": 1_000_000 });
    let product = id(&c.command("ListProduct", "/v1/products", Some(admin), product).await?)?;
    let package = json!({ "name": "Drill pack", "price": "9.99", "currency": "EUR", "points": 100 });
    let package = id(&c.command("CreatePackage", "/v1/credit-packages", Some(admin), package).await?)?;

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let email = format!("drill-{i}-{}@drill.dev", micros());
        let who = json!({ "email": email, "password": "drill-password", "name": "Drill" });
        let registered = c.command("Register", "/v1/auth/register", None, who).await?;
        let (user, token) = (
            registered["user_id"].as_str().context("user_id")?.to_owned(),
            registered["token"].as_str().context("token")?.to_owned(),
        );
        let purchase = id(&c
            .command("StartPurchase", "/v1/credit-purchases", Some(&token), json!({ "package_id": package }))
            .await?)?;
        let paid =
            json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": format!("drill-{i}") });
        c.command("SettlePurchase", "/v1/payments/webhook", None, paid).await?;
        let redeem = json!({ "product_id": product, "quantity": 1 });
        let redemption = id(&c.command("PlaceRedemption", "/v1/redemptions", Some(&token), redeem).await?)?;
        let settle = if i.is_multiple_of(2) {
            ("CancelRedemption", "cancel", token.as_str())
        } else {
            ("FulfilRedemption", "fulfil", admin)
        };
        c.command(settle.0, &format!("/v1/redemptions/{redemption}/{}", settle.1), Some(settle.2), json!({}))
            .await?;
        let adjustment = json!({ "delta": 5, "reason": "drill goodwill" });
        c.command("AdjustPoints", &format!("/v1/accounts/{user}/adjustments"), Some(admin), adjustment)
            .await?;
        // Behaviour data, not the ledger: restored with the rest, but it appends no
        // event, so it has no position for the drill to look for.
        let view = json!({ "product_id": product, "kind": "view" });
        c.unlogged(reqwest::Method::POST, "RecordInteraction", "/v1/interactions", Some(&token), view)
            .await?;
        if i.is_multiple_of(5) {
            let stock = json!({ "kind": "receive", "quantity": 10, "reason": "drill delivery" });
            c.command("ChangeStock", &format!("/v1/products/{product}/stock"), Some(admin), stock).await?;
            c.command(
                "GrantRole",
                &format!("/v1/users/{user}/roles"),
                Some(admin),
                json!({ "role": "auditor" }),
            )
            .await?;
            let revision = json!({ "description": format!("revision {i}") });
            let path = format!("/v1/products/{product}");
            c.send(reqwest::Method::PATCH, "ReviseProduct", &path, Some(admin), revision).await?;
        }
        c.log.flush()?;
    }
    c.log.flush()?;
    eprintln!("dr_workload: {} commands acknowledged in {seconds} s", c.acknowledged);
    Ok(())
}
