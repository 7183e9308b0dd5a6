//! The sender: each endpoint's queue is delivered in order by a task of its own, so a
//! slow or dead receiver holds up nobody else. A delivery is marked delivered only
//! after a 2xx answer (at least once: a crash between the two re-sends that one
//! delivery, with the same `id`); a failure is retried with exponential backoff and
//! jitter for up to 24 hours, then dead-lettered so the queue moves on; an endpoint
//! failing for 24 hours is disabled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use rand::Rng;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{DispatchConfig, Tools};

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a delivery is retried, and an endpoint may fail, before giving up.
const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::hours(24);

/// The HTTP client of every delivery: 5 s per attempt, no redirects (a redirect could
/// lead anywhere), and unless private targets are allowed, a resolver that drops
/// private, loopback and link-local addresses, so the address connected to is the one
/// checked.
pub fn client(config: &DispatchConfig) -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tally-webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = if config.allow_private { builder } else { builder.dns_resolver(Arc::new(PublicOnly)) };
    Ok(builder.build()?)
}

struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| infra::webhooks::is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An endpoint's worker, as the sender sees it.
struct Slot {
    wake: Notify,
    /// Set with every wake-up; the worker clears it before it reads its queue, so a
    /// wake-up that comes as it gives up is not lost (the sender starts it again).
    woken: AtomicBool,
}

impl Slot {
    fn wake(&self) {
        self.woken.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// How long an idle worker waits for news before it ends.
const IDLE: Duration = Duration::from_secs(1);

/// Runs until cancelled (dropping it aborts the deliveries in flight). Each endpoint
/// with work has a worker of its own, woken by the fan-out for its endpoint (`news`)
/// and by a scan every second for retries that fall due and for what another instance
/// queued.
pub async fn run(
    tools: Tools,
    config: DispatchConfig,
    mut news: mpsc::UnboundedReceiver<Vec<Uuid>>,
) -> anyhow::Result<()> {
    let mut slots: HashMap<Uuid, Arc<Slot>> = HashMap::new();
    let mut workers: JoinSet<Uuid> = JoinSet::new();
    let mut scan = tokio::time::interval(Duration::from_secs(1));
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake = |endpoint: Uuid, slots: &mut HashMap<Uuid, Arc<Slot>>, workers: &mut JoinSet<Uuid>| {
        let slot = slots.entry(endpoint).or_insert_with(|| {
            let slot = Arc::new(Slot { wake: Notify::new(), woken: AtomicBool::new(false) });
            workers.spawn(worker(tools.clone(), config.clone(), endpoint, slot.clone()));
            slot
        });
        slot.wake();
    };
    loop {
        tokio::select! {
            Some(endpoints) = news.recv() => {
                for endpoint in endpoints {
                    wake(endpoint, &mut slots, &mut workers);
                }
            }
            _ = scan.tick() => {
                let now = Utc::now();
                for (endpoint, at) in due_endpoints(&tools.pool).await? {
                    if at <= now {
                        wake(endpoint, &mut slots, &mut workers);
                    }
                }
            }
            Some(done) = workers.join_next() => {
                let Ok(endpoint) = done else { continue };
                if let Some(slot) = slots.remove(&endpoint) {
                    if slot.woken.load(Ordering::SeqCst) {
                        wake(endpoint, &mut slots, &mut workers);
                    }
                }
            }
        }
    }
}

/// Delivers one endpoint's queue; waits for news while it is idle, and ends after a
/// second without any, or when the head of its queue must wait for a retry.
async fn worker(tools: Tools, config: DispatchConfig, endpoint: Uuid, slot: Arc<Slot>) -> Uuid {
    loop {
        slot.woken.store(false, Ordering::SeqCst);
        match deliver_due(&tools, &config, endpoint, &slot).await {
            Ok(true) => {}
            Ok(false) => return endpoint,
            Err(e) => {
                tracing::warn!(%endpoint, error = %e, "webhook delivery bookkeeping failed");
                return endpoint;
            }
        }
        tokio::select! {
            _ = slot.wake.notified() => {}
            _ = tokio::time::sleep(IDLE) => return endpoint,
        }
    }
}

/// Every enabled endpoint with pending deliveries, with when its oldest is due. (Every
/// statement here is prepared once per connection: one round trip each.)
async fn due_endpoints(pool: &Pool) -> anyhow::Result<Vec<(Uuid, DateTime<Utc>)>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT DISTINCT ON (d.endpoint_id) d.endpoint_id, d.next_attempt_at
             FROM webhooks.deliveries d JOIN webhooks.endpoints e ON e.id = d.endpoint_id
             WHERE d.status = 'pending' AND e.disabled_at IS NULL
             ORDER BY d.endpoint_id, d.id",
                )
                .await?,
            &[],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A queued delivery, with what it takes to send it.
struct Head {
    id: i64,
    body: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    url: String,
    secrets: Vec<String>,
    failing_since: Option<DateTime<Utc>>,
}

/// Deliveries read per round trip.
const HEADS: i64 = 64;

/// No connection is held while a receiver takes its time: a slow endpoint cannot starve
/// the others of connections.
/// Delivers the queue in order while attempts succeed and deliveries are due: true
/// when it is empty, false when its head waits for a retry. A short read with no news
/// since means the queue is empty, so an idle endpoint costs no extra round trip.
async fn deliver_due(
    tools: &Tools,
    config: &DispatchConfig,
    endpoint: Uuid,
    slot: &Slot,
) -> anyhow::Result<bool> {
    loop {
        let heads = heads(&tools.pool.get().await?, endpoint).await?;
        let short = heads.len() < HEADS as usize;
        if heads.is_empty() {
            return Ok(true);
        }
        for head in heads {
            if head.next_attempt_at > Utc::now() || !attempt_and_record(tools, config, endpoint, head).await?
            {
                return Ok(false);
            }
        }
        if short && !slot.woken.load(Ordering::SeqCst) {
            return Ok(true);
        }
    }
}

/// One attempt, recorded before the next one starts (so a crash re-sends at most the
/// delivery in flight); true when the queue may go on at once.
async fn attempt_and_record(
    tools: &Tools,
    config: &DispatchConfig,
    endpoint: Uuid,
    head: Head,
) -> anyhow::Result<bool> {
    let outcome = if !config.allow_private && private_literal(&head.url) {
        Err((None, "refused: the URL names a private, loopback or link-local address".to_owned()))
    } else {
        attempt(&tools.http, &head).await
    };
    let now = Utc::now();
    let attempts = head.attempts + 1;
    let client = tools.pool.get().await?;
    match outcome {
        Ok(code) => {
            client
                .execute(
                    &client.prepare_cached("UPDATE webhooks.deliveries SET status = 'delivered', attempts = $2, last_status_code = $3,
                         last_error = NULL, last_attempt_at = $4, delivered_at = $4 WHERE id = $1").await?,
                    &[&head.id, &attempts, &code, &now],
                )
                .await?;
            tools.metrics.webhook_attempts.with_label_values(&["delivered"]).inc();
            if head.failing_since.is_some() {
                let clear = client
                    .prepare_cached("UPDATE webhooks.endpoints SET failing_since = NULL WHERE id = $1")
                    .await?;
                client.execute(&clear, &[&endpoint]).await?;
            }
            Ok(true)
        }
        Err((code, error)) => {
            let dead = now - head.created_at >= GIVE_UP_AFTER;
            tools.metrics.webhook_attempts.with_label_values(&[if dead { "dead" } else { "failed" }]).inc();
            let next = now + backoff(attempts, config.retry_cap);
            client
                .execute(
                    &client.prepare_cached("UPDATE webhooks.deliveries SET status = CASE WHEN $2 THEN 'dead' ELSE 'pending' END,
                         attempts = $3, last_status_code = $4, last_error = $5, last_attempt_at = $6,
                         next_attempt_at = $7 WHERE id = $1").await?,
                    &[&head.id, &dead, &attempts, &code, &error, &now, &next],
                )
                .await?;
            let failing_since = head.failing_since.unwrap_or(now);
            let disable = now - failing_since >= GIVE_UP_AFTER;
            client
                .execute(
                    &client
                        .prepare_cached(
                            "UPDATE webhooks.endpoints SET failing_since = $2,
                         disabled_at = CASE WHEN $3 THEN $4 ELSE disabled_at END WHERE id = $1",
                        )
                        .await?,
                    &[&endpoint, &failing_since, &disable, &now],
                )
                .await?;
            if disable {
                tracing::warn!(%endpoint, "webhook endpoint disabled after failing for 24 hours");
            }
            // A dead letter lets the queue move on; a retry waits its turn.
            Ok(dead && !disable)
        }
    }
}

/// The next deliveries of one endpoint's queue, in order.
async fn heads(client: &deadpool_postgres::Client, endpoint: Uuid) -> anyhow::Result<Vec<Head>> {
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT d.id, d.body, d.attempts, d.created_at, d.next_attempt_at, e.url, e.secret,
                    CASE WHEN e.previous_until > now() THEN e.previous_secret END, e.failing_since
             FROM webhooks.deliveries d JOIN webhooks.endpoints e ON e.id = d.endpoint_id
             WHERE d.endpoint_id = $1 AND d.status = 'pending' AND e.disabled_at IS NULL
             ORDER BY d.id LIMIT $2",
                )
                .await?,
            &[&endpoint, &HEADS],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Head {
            id: r.get(0),
            body: r.get(1),
            attempts: r.get(2),
            created_at: r.get(3),
            next_attempt_at: r.get(4),
            url: r.get(5),
            secrets: [Some(r.get::<_, String>(6)), r.get::<_, Option<String>>(7)]
                .into_iter()
                .flatten()
                .collect(),
            failing_since: r.get(8),
        })
        .collect())
}

/// An address written into the URL never reaches the resolver: check it here.
fn private_literal(url: &str) -> bool {
    let ip = url::Url::parse(url).ok().and_then(|u| match u.host()? {
        url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    });
    ip.is_some_and(|ip| !infra::webhooks::is_public(ip))
}

/// Sends once: the status code of a 2xx answer, or what went wrong.
async fn attempt(http: &reqwest::Client, head: &Head) -> Result<i32, (Option<i32>, String)> {
    let secrets: Vec<&str> = head.secrets.iter().map(String::as_str).collect();
    let signature = infra::webhooks::sign(&secrets, Utc::now().timestamp(), head.body.as_bytes());
    let sent = http
        .post(&head.url)
        .header("content-type", "application/json")
        .header("tally-signature", signature)
        .body(head.body.clone())
        .send()
        .await;
    match sent {
        Ok(res) if res.status().is_success() => Ok(i32::from(res.status().as_u16())),
        Ok(res) => Err((Some(i32::from(res.status().as_u16())), format!("answered {}", res.status()))),
        Err(e) if e.is_timeout() => Err((None, "no answer within 5 s".into())),
        Err(e) => Err((None, error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(500).collect()
}

/// Exponential from 1 s, capped, with jitter: a random half to all of the step.
fn backoff(attempts: i32, cap: Duration) -> chrono::Duration {
    let step = Duration::from_secs(1u64 << attempts.clamp(1, 20).saturating_sub(1)).min(cap);
    let jittered = step.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
    chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        for attempts in 1..=30 {
            let step = Duration::from_secs(1u64 << (attempts.min(20) - 1)).min(Duration::from_secs(3600));
            let b = backoff(attempts, Duration::from_secs(3600)).to_std().unwrap();
            assert!(b >= step / 2 && b <= step, "attempt {attempts}: {b:?} for a step of {step:?}");
        }
    }
}
