//! How every command runs: one transaction that claims the `Idempotency-Key` (if any),
//! locks and loads the streams it needs, decides, and appends; retried from the start
//! on a version conflict or deadlock, with jittered backoff.
//!
//! Commands implement [`Command`]; handlers call [`run`].

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use domain::{Aggregate, DomainEvent, Role, Snapshot};
use infra::store::{self, Actor, Checkpoint, Metadata, NewEvent, StreamAppend};
use rand::Rng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::error::ApiError;
use crate::request_id::RequestId;
use crate::state::AppState;

const MAX_ATTEMPTS: u32 = 8;
pub const POSITION_HEADER: &str = "X-Tally-Position";

/// Who is running a command, and when.
#[derive(Debug, Clone)]
pub struct Context {
    pub request_id: String,
    pub actor: Actor,
    pub command: &'static str,
    pub now: DateTime<Utc>,
}

impl Context {
    pub fn new(req: &HttpRequest, command: &'static str, user: Option<Uuid>, role: &str) -> Self {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        Context {
            request_id,
            actor: Actor { user_id: user, role: role.to_owned() },
            command,
            now: Utc::now(),
        }
    }

    pub fn for_caller(
        req: &HttpRequest,
        command: &'static str,
        caller: &crate::extract::Caller,
        role: Role,
    ) -> Self {
        Self::new(req, command, Some(caller.0.sub), caller.acting_role(role).as_str())
    }

    pub fn metadata(&self) -> Metadata {
        Metadata {
            correlation_id: self.request_id.clone(),
            causation_id: self.request_id.clone(),
            actor: self.actor.clone(),
            command: self.command.to_owned(),
        }
    }
}

/// A successful command's answer, before `position` is added.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Map<String, Value>,
    pub position: Checkpoint,
}

/// A command: given a transaction, lock/load, decide and append. Used only inside
/// this crate, so the returned future needs no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Command {
    async fn execute(&self, tx: &Transaction<'_>, ctx: &Context) -> Result<Reply, ApiError>;
}

/// An `Idempotency-Key` with the caller and request fingerprint it is bound to.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub caller: String,
    pub key: String,
    pub fingerprint: Vec<u8>,
}

impl IdempotencyKey {
    /// Reads the header; a key is bound to the caller, method, path and exact body.
    pub fn from_request(req: &HttpRequest, caller: String, body: &[u8]) -> Result<Option<Self>, ApiError> {
        let Some(value) = req.headers().get("idempotency-key") else {
            return Ok(None);
        };
        let key = value.to_str().ok().filter(|k| (1..=255).contains(&k.len())).ok_or_else(|| {
            ApiError::Validation("Idempotency-Key must be 1 to 255 visible characters".into())
        })?;
        let mut h = Sha256::new();
        h.update(req.method().as_str());
        h.update([0]);
        h.update(req.path());
        h.update([0]);
        h.update(body);
        Ok(Some(IdempotencyKey { caller, key: key.to_owned(), fingerprint: h.finalize().to_vec() }))
    }
}

/// Runs `command` to completion and renders its response.
pub async fn run(
    state: &AppState,
    ctx: Context,
    idempotency: Option<IdempotencyKey>,
    command: &impl Command,
) -> Result<HttpResponse, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attempt_once(state, &ctx, idempotency.as_ref(), command).await {
            Err(Attempt::Retry(e)) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "retrying command after a conflict");
                let cap = 2u64.pow(attempt.min(6));
                let ms = rand::thread_rng().gen_range(1..=cap);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Err(Attempt::Retry(e)) => return Err(e),
            Err(Attempt::Fail(e)) => return Err(e),
            Ok(Done::Fresh(reply)) => return Ok(render(&reply.status, reply.body, false)),
            Ok(Done::Replayed(status, body)) => return Ok(render(&status, body, true)),
        }
    }
}

/// Why an attempt ended without a response: retry from scratch, or give up.
enum Attempt {
    Retry(ApiError),
    Fail(ApiError),
}

impl From<ApiError> for Attempt {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Conflict(_) => Attempt::Retry(e),
            e => Attempt::Fail(e),
        }
    }
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::from(e).into()
    }
}

enum Done {
    Fresh(Reply),
    Replayed(StatusCode, Map<String, Value>),
}

async fn attempt_once(
    state: &AppState,
    ctx: &Context,
    idempotency: Option<&IdempotencyKey>,
    command: &impl Command,
) -> Result<Done, Attempt> {
    let mut client = state.pool.get().await.map_err(ApiError::from)?;
    let tx = client.transaction().await?;
    if let Some(key) = idempotency {
        // Blocks while another request holds the same key in flight, then either
        // claims it or finds the committed first response.
        let claimed = tx
            .execute(
                "INSERT INTO es.idempotency (caller, key, request_hash, status, body) \
                 VALUES ($1, $2, $3, 0, 'null') ON CONFLICT DO NOTHING",
                &[&key.caller, &key.key, &key.fingerprint],
            )
            .await?;
        if claimed == 0 {
            tx.rollback().await?;
            return replay(state, key).await;
        }
    }
    let mut reply = command.execute(&tx, ctx).await?;
    reply.body.insert("position".into(), Value::String(reply.position.token()));
    if let Some(key) = idempotency {
        tx.execute(
            "UPDATE es.idempotency SET status = $3, body = $4 WHERE caller = $1 AND key = $2",
            &[&key.caller, &key.key, &(reply.status.as_u16() as i16), &Value::Object(reply.body.clone())],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Done::Fresh(reply))
}

async fn replay(state: &AppState, key: &IdempotencyKey) -> Result<Done, Attempt> {
    let client = state.pool.get().await.map_err(ApiError::from)?;
    let row = client
        .query_opt(
            "SELECT request_hash, status, body FROM es.idempotency WHERE caller = $1 AND key = $2",
            &[&key.caller, &key.key],
        )
        .await?
        // The holder rolled back after we saw its row: claim the key afresh.
        .ok_or_else(|| Attempt::Retry(ApiError::Conflict("idempotency key released".into())))?;
    let fingerprint: Vec<u8> = row.get(0);
    if fingerprint != key.fingerprint {
        return Err(ApiError::IdempotencyKeyReused.into());
    }
    let status = StatusCode::from_u16(row.get::<_, i16>(1) as u16).unwrap_or(StatusCode::OK);
    let body = match row.get::<_, Value>(2) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Ok(Done::Replayed(status, body))
}

fn render(status: &StatusCode, body: Map<String, Value>, replayed: bool) -> HttpResponse {
    let mut res = HttpResponse::build(*status);
    if let Some(Value::String(p)) = body.get("position") {
        res.insert_header((POSITION_HEADER, p.as_str()));
    }
    if replayed {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
    res.json(Value::Object(body))
}

/// A stream folded into its aggregate, with the version and checkpoint it was at.
#[derive(Debug)]
pub struct Loaded<A> {
    pub state: A,
    pub version: i64,
    pub last: Option<Checkpoint>,
    /// The version of the snapshot the fold started from (0: from the first event).
    pub snapshot_version: i64,
}

impl<A> Loaded<A> {
    pub fn exists(&self) -> bool {
        self.version > 0
    }
}

impl<A: Default> Loaded<A> {
    /// A stream whose id this command just generated: there is nothing to read. The
    /// append still expects version 0, so an existing stream would be refused.
    pub fn fresh() -> Self {
        Loaded { state: A::default(), version: 0, last: None, snapshot_version: 0 }
    }
}

/// Loads and folds one stream (inside the command's transaction).
pub async fn load<A: Aggregate>(tx: &Transaction<'_>, stream_id: &str) -> Result<Loaded<A>, ApiError> {
    let events = store::read_stream(tx, stream_id, 0).await?;
    let mut state = A::default();
    for e in &events {
        let event = A::Event::decode(&e.event_type, &e.data).map_err(|e| ApiError::Unexpected(e.into()))?;
        state.apply(&event);
    }
    Ok(Loaded {
        state,
        version: events.last().map_or(0, |e| e.version),
        last: events.last().map(Checkpoint::of),
        snapshot_version: 0,
    })
}

/// Whether a stream has any event (a head lookup, whatever the stream's length).
pub async fn stream_exists(tx: &Transaction<'_>, stream_id: &str) -> Result<bool, ApiError> {
    Ok(tx.query_opt("SELECT 1 FROM es.streams WHERE stream_id = $1", &[&stream_id]).await?.is_some())
}

/// Streams that grow with traffic are snapshotted every this many events.
const SNAPSHOT_EVERY: i64 = 64;

/// Loads a stream from its newest snapshot (if any, and of the current schema) plus
/// the events after it, so a command's cost does not grow with the stream's length.
///
/// `locked` is what [`lock`] returned: a stream shorter than the snapshot interval
/// cannot have a snapshot, so it is read with one plain query.
pub async fn load_snapshotted<A: Snapshot>(
    tx: &Transaction<'_>,
    stream_id: &str,
    locked: &Locked,
) -> Result<Loaded<A>, ApiError> {
    let head = locked.get(stream_id).copied().unwrap_or(0);
    if head < SNAPSHOT_EVERY {
        return load(tx, stream_id).await;
    }
    // Both reads go out together (pipelined on the connection): the events query
    // starts after the snapshot's version itself, so a short stream costs no extra trip.
    // The stream is locked, so no snapshot can be written between the two.
    let schema = A::SNAPSHOT_SCHEMA;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&stream_id, &schema];
    let snapshot_query = tx.query_opt(
        "SELECT version, state, last_tx, last_pos FROM es.snapshots WHERE stream_id = $1 AND schema = $2",
        &params,
    );
    let events_query = store::read_stream_after_snapshot(tx, stream_id, A::SNAPSHOT_SCHEMA, head);
    let (row, events) = futures::future::join(snapshot_query, events_query).await;
    let (row, events) = (row?, events?);
    let had_snapshot = row.is_some();
    let snapshot = row.and_then(|r| {
        let state = serde_json::from_value::<A>(r.get(1)).ok()?;
        let last = Checkpoint { tx_id: r.get::<_, &str>(2).parse().ok()?, position: r.get(3) };
        Some((r.get::<_, i64>(0), state, last))
    });
    let (snapshot_version, mut state, last) = match snapshot {
        Some((v, state, last)) => (v, state, Some(last)),
        None => (0, A::default(), None),
    };
    // A snapshot that no longer decodes is ignored: fold the whole stream instead.
    let events = if had_snapshot && snapshot_version == 0 {
        store::read_stream(tx, stream_id, 0).await?
    } else {
        events
    };
    for e in &events {
        let event = A::Event::decode(&e.event_type, &e.data).map_err(|e| ApiError::Unexpected(e.into()))?;
        state.apply(&event);
    }
    Ok(Loaded {
        state,
        version: events.last().map_or(snapshot_version, |e| e.version),
        last: events.last().map(Checkpoint::of).or(last),
        snapshot_version,
    })
}

/// After an append, stores the stream's new state as a snapshot when enough events
/// have accumulated since the last one. Runs in the command's transaction, with the
/// stream locked, so the snapshot always matches the events it covers.
pub async fn snapshot_if_due<A: Snapshot>(
    tx: &Transaction<'_>,
    stream_id: &str,
    loaded: &Loaded<A>,
    events: &[A::Event],
    at: Checkpoint,
) -> Result<(), ApiError> {
    let version = loaded.version + events.len() as i64;
    if events.is_empty() || version - loaded.snapshot_version < SNAPSHOT_EVERY {
        return Ok(());
    }
    let mut state = loaded.state.clone();
    events.iter().for_each(|e| state.apply(e));
    let state = serde_json::to_value(&state).map_err(|e| ApiError::Unexpected(e.into()))?;
    tx.execute(
        "INSERT INTO es.snapshots (stream_id, version, schema, state, last_tx, last_pos) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, schema = EXCLUDED.schema, \
             state = EXCLUDED.state, last_tx = EXCLUDED.last_tx, last_pos = EXCLUDED.last_pos",
        &[&stream_id, &version, &A::SNAPSHOT_SCHEMA, &state, &at.tx_id.to_string(), &at.position],
    )
    .await?;
    Ok(())
}

/// The versions of the streams a command has locked.
pub type Locked = std::collections::HashMap<String, i64>;

/// Locks the streams' heads for this transaction (sorted, so lockers never deadlock)
/// and returns their versions.
pub async fn lock(tx: &Transaction<'_>, stream_ids: &[&str]) -> Result<Locked, ApiError> {
    Ok(store::lock_streams(tx, stream_ids).await?)
}

/// The events a decision produced, for one stream at its loaded version.
pub fn stream_append<A: Aggregate>(
    stream_id: String,
    loaded: &Loaded<A>,
    events: &[A::Event],
) -> StreamAppend {
    StreamAppend {
        stream_id,
        expected_version: loaded.version,
        events: events
            .iter()
            .map(|e| {
                let (event_type, data) = e.encode();
                NewEvent {
                    event_id: Uuid::new_v4(),
                    event_type,
                    schema_version: A::Event::SCHEMA_VERSION,
                    data,
                }
            })
            .collect(),
    }
}

/// Appends the non-empty stream appends and returns the checkpoint to hand back.
pub async fn append(
    tx: &Transaction<'_>,
    ctx: &Context,
    appends: Vec<StreamAppend>,
) -> Result<Checkpoint, ApiError> {
    let appends: Vec<StreamAppend> = appends.into_iter().filter(|a| !a.events.is_empty()).collect();
    let appended = store::append(tx, &appends, &ctx.metadata(), ctx.now).await?;
    Ok(appended.last)
}

/// A reply body from a JSON object literal.
pub fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
