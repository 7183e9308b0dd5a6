//! Group commit for hot streams (design §15): concurrent commands on the same stream
//! share one transaction, so a golden hour's crowd on one product pays one commit (one
//! WAL flush) per batch instead of one per redemption.
//!
//! The first request for a stream becomes its batch's leader (a task of its own); the
//! requests that arrive while a batch is in flight queue for the next one. A batch
//! claims its `Idempotency-Key`s, then locks every stream its commands need in one
//! key-ordered round (so batches never deadlock with each other), then runs each
//! command in arrival order against the state its predecessors left, with its own
//! metadata, clock, idempotency record and hash-chain links, and commits once; every
//! answer goes out after that commit, so every acknowledged command is durable. A
//! command decided against (`insufficient_points`, `out_of_stock`…) queues nothing, so
//! it fails alone. Anything else (a database error, a deadlock) rolls the batch back and
//! runs its commands one by one through the ordinary pipeline, with its retries.
//!
//! Each instance batches its own requests; the stream's lock still serializes batches
//! across instances.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use infra::http::error::ApiError;
use infra::store;
use infra::uow::UnitOfWork;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::pipeline::{self, Command, Context, IdempotencyKey, Reply};
use crate::state::AppState;

/// The most commands one transaction takes; the rest wait for the next.
const MAX_BATCH: usize = 256;

/// A command that may share its transaction with others on the same hot stream.
pub trait Batchable: Command + Send + 'static {
    /// The stream whose concurrent commands are batched together.
    fn hot_stream(&self) -> String;
    /// Every stream the command locks.
    fn streams(&self) -> Vec<String>;
}

type Outcome = Result<(StatusCode, Map<String, Value>, bool), ApiError>;

struct Pending<C> {
    ctx: Context,
    idempotency: Option<IdempotencyKey>,
    command: C,
    reply: oneshot::Sender<Outcome>,
}

/// The queues of commands waiting for their stream's next batch.
pub struct GroupCommit<C> {
    queues: Mutex<HashMap<String, Vec<Pending<C>>>>,
}

impl<C> Default for GroupCommit<C> {
    fn default() -> Self {
        GroupCommit { queues: Mutex::new(HashMap::new()) }
    }
}

impl<C> std::fmt::Debug for GroupCommit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<C: Batchable> GroupCommit<C> {
    /// Runs `command` in its hot stream's next batch: its status, body (with
    /// `position`) and whether it was replayed from its `Idempotency-Key`.
    pub async fn execute(
        self: &Arc<Self>,
        state: &AppState,
        ctx: Context,
        idempotency: Option<IdempotencyKey>,
        command: C,
    ) -> Outcome {
        let stream = command.hot_stream();
        let (reply, answer) = oneshot::channel();
        let pending = Pending { ctx, idempotency, command, reply };
        let lead = match self.lock().entry(stream.clone()) {
            Entry::Occupied(mut queue) => {
                queue.get_mut().push(pending);
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(vec![pending]);
                true
            }
        };
        if lead {
            actix_web::rt::spawn(self.clone().lead(state.clone(), stream));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ApiError::Unexpected(anyhow::anyhow!("a group commit ended unanswered"))))
    }

    /// Runs batches of `stream` until its queue is empty.
    async fn lead(self: Arc<Self>, state: AppState, stream: String) {
        loop {
            let batch: Vec<Pending<C>> = {
                let mut queues = self.lock();
                let Some(queue) = queues.get_mut(&stream) else { return };
                if queue.is_empty() {
                    queues.remove(&stream);
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            settle(&state, batch).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Pending<C>>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `batch` in one transaction and answers each request; if the transaction
/// fails, runs each command on its own.
async fn settle<C: Batchable>(state: &AppState, batch: Vec<Pending<C>>) {
    if batch.len() > 1 {
        match together(state, &batch).await {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = pending.reply.send(outcome);
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, size = batch.len(), "group commit failed; its commands run one by one")
            }
        }
    }
    for p in batch {
        let outcome = pipeline::execute(state, p.ctx, p.idempotency, &p.command).await;
        let _ = p.reply.send(outcome);
    }
}

/// The batch's transaction: every outcome, or the error that rolled it back.
async fn together<C: Batchable>(state: &AppState, batch: &[Pending<C>]) -> Result<Vec<Outcome>, ApiError> {
    let mut client = state.pool.get().await?;
    let mut uow = UnitOfWork::begin(&mut client).await?;
    // Keys first, as the single-command path does: before any stream lock.
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
    for p in batch {
        let stored = match &p.idempotency {
            Some(key) => store::idempotency::claim(uow.tx(), key).await?.map(|s| pipeline::replay(key, s)),
            None => None,
        };
        outcomes.push(stored);
    }
    let mut streams: Vec<String> = batch
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_none())
        .flat_map(|(p, _)| p.command.streams())
        .collect();
    streams.sort_unstable();
    streams.dedup();
    uow.lock(&streams.iter().map(String::as_str).collect::<Vec<_>>()).await?;

    let mut keys_seen = HashSet::new();
    for (p, outcome) in batch.iter().zip(outcomes.iter_mut()) {
        if outcome.is_some() {
            continue;
        }
        if let Some(key) = &p.idempotency {
            // A key repeated within the batch: the earlier request's record, written
            // in this transaction, answers it (or it runs, if that one was refused).
            if !keys_seen.insert((key.caller.clone(), key.key.clone())) {
                if let Some(stored) = store::idempotency::claim(uow.tx(), key).await? {
                    *outcome = Some(pipeline::replay(key, stored));
                    continue;
                }
            }
        }
        *outcome = Some(run_one(&mut uow, p).await?);
    }
    uow.commit().await?;
    Ok(outcomes.into_iter().map(|o| o.expect("every request answered")).collect())
}

/// One command of a batch: `Ok(its outcome)`, or `Err` when the whole batch must roll
/// back.
async fn run_one<C: Batchable>(uow: &mut UnitOfWork<'_>, p: &Pending<C>) -> Result<Outcome, ApiError> {
    match p.command.execute(uow, &p.ctx).await {
        Ok(Reply { status, mut body }) => {
            let position = uow.save(&p.ctx.metadata(), p.ctx.now).await?;
            body.insert("position".into(), Value::String(position.token()));
            if let Some(key) = &p.idempotency {
                store::idempotency::record(uow.tx(), key, status.as_u16(), &Value::Object(body.clone()))
                    .await?;
            }
            Ok(Ok((status, body, false)))
        }
        // Decided against before anything was queued: only this request fails.
        Err(e) if !uow.has_pending() && is_decision(&e) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

/// A refusal the command decided (a 4xx other than a retryable conflict).
fn is_decision(e: &ApiError) -> bool {
    use actix_web::ResponseError;
    e.status_code().is_client_error() && !matches!(e, ApiError::Conflict(_))
}
