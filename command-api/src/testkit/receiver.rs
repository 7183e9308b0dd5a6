//! A real local HTTP receiver for outbound webhooks: records every request (body,
//! signature, what it answered) and answers as told — accept, fail, fail each event's
//! first attempt, or hold each request for a while before accepting.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 503 to everything (an outage).
    Fail,
    /// 500 to the first attempt of each event id, then 200.
    FailFirst,
    /// Holds each request this long, then 200.
    Slow(Duration),
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub event_type: String,
    pub position: i64,
    pub payload: Value,
    pub body: String,
    pub signature: String,
    pub accepted: bool,
}

#[derive(Default)]
struct Inner {
    mode: Option<Mode>,
    seen: HashSet<String>,
    got: Vec<Received>,
}

pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner { mode: Some(mode), ..Inner::default() }));
        let state = web::Data::new(inner.clone());
        let server =
            HttpServer::new(move || App::new().app_data(state.clone()).default_service(web::to(receive)))
                .workers(1)
                .bind(("127.0.0.1", 0))
                .expect("bind the receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { url: format!("http://127.0.0.1:{port}/hook"), inner, handle }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().expect("receiver").mode = Some(mode);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("receiver").got.clone()
    }

    /// The requests it accepted (answered 2xx), in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }

    /// Waits until `done` holds for the accepted requests, or panics after `within`.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver never got what was expected: {accepted:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let body = String::from_utf8_lossy(&body).into_owned();
    let payload: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = payload["id"].as_str().unwrap_or_default().to_owned();
    // Recorded on arrival, so a request whose sender dies while it is held counts.
    let (mode, accepted) = {
        let mut inner = state.lock().expect("receiver");
        let mode = inner.mode.unwrap_or(Mode::Accept);
        let accepted = match mode {
            Mode::Accept | Mode::Slow(_) => true,
            Mode::Fail => false,
            Mode::FailFirst => !inner.seen.insert(id.clone()),
        };
        inner.got.push(Received {
            id,
            event_type: payload["type"].as_str().unwrap_or_default().to_owned(),
            position: payload["position"].as_i64().unwrap_or(-1),
            signature: req
                .headers()
                .get("tally-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            payload,
            body,
            accepted,
        });
        (mode, accepted)
    };
    if let Mode::Slow(d) = mode {
        tokio::time::sleep(d).await;
    }
    if accepted {
        HttpResponse::Ok().finish()
    } else if mode == Mode::Fail {
        HttpResponse::ServiceUnavailable().finish()
    } else {
        HttpResponse::InternalServerError().finish()
    }
}

/// Where each received event stands in the store's global feed, `(tx_id, position)`,
/// in the order the requests arrived: sorted when delivery kept the feed's order
/// (`position` alone is not monotonic across concurrent commits).
pub async fn feed_order(db: &tokio_postgres::Client, got: &[Received]) -> Vec<(u64, i64)> {
    let ids: Vec<uuid::Uuid> = got.iter().filter_map(|r| uuid::Uuid::parse_str(&r.id).ok()).collect();
    let rows = db
        .query("SELECT event_id, tx_id::text, position FROM es.events WHERE event_id = ANY($1)", &[&ids])
        .await
        .expect("the received events in the store");
    let place: std::collections::HashMap<uuid::Uuid, (u64, i64)> =
        rows.iter().map(|r| (r.get(0), (r.get::<_, &str>(1).parse().expect("xid"), r.get(2)))).collect();
    ids.iter().map(|id| place[id]).collect()
}
