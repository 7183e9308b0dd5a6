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
//!
//! Leaders run on threads of their own, not on the HTTP workers': a worker that has
//! answered its own requests stops at shutdown and drops what it spawned, and a leader
//! dropped there would fail other workers' requests in its queue (or leave the queue
//! stuck). The leaders' threads live as long as the application's state.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use infra::http::error::ApiError;
use infra::store;
use infra::uow::UnitOfWork;
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio_util::task::LocalPoolHandle;

use crate::pipeline::{self, Command, Context, IdempotencyKey, Outcome, Reply};
use crate::state::AppState;

/// The most commands one transaction takes; the rest wait for the next.
const MAX_BATCH: usize = 256;

/// A command that may share its transaction with others on the same hot stream.
pub trait Batchable: Command + Send + 'static {
    /// The stream whose concurrent commands are batched together.
    fn hot_stream(&self) -> String;
    /// Every stream the command locks.
    fn streams(&self) -> Vec<String>;
    /// Loads, all at once, what the batch's commands will load one by one (their
    /// streams are locked by then).
    #[allow(async_fn_in_trait)]
    async fn prefetch(_uow: &mut UnitOfWork<'_>, _batch: &[&Self]) -> Result<(), ApiError> {
        Ok(())
    }
}

struct Pending<C> {
    ctx: Context,
    idempotency: Option<IdempotencyKey>,
    command: C,
    reply: oneshot::Sender<Outcome>,
}

/// The queues of commands waiting for their stream's next batch, and the threads their
/// leaders run on.
pub struct GroupCommit<C> {
    queues: Mutex<HashMap<String, Vec<Pending<C>>>>,
    leaders: LocalPoolHandle,
}

impl<C> Default for GroupCommit<C> {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        GroupCommit { queues: Mutex::new(HashMap::new()), leaders: LocalPoolHandle::new(threads) }
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
            let (this, state) = (self.clone(), state.clone());
            drop(self.leaders.spawn_pinned(move || this.lead(state, stream)));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ApiError::Unexpected(anyhow::anyhow!("a group commit ended unanswered"))))
    }

    /// Runs batches of `stream` until its queue is empty.
    async fn lead(self: Arc<Self>, state: AppState, stream: String) {
        let mut unstick = Unstick { queues: &self.queues, stream: &stream, done: false };
        loop {
            let batch: Vec<Pending<C>> = {
                let mut queues = self.lock();
                match queues.get_mut(&stream) {
                    Some(queue) if !queue.is_empty() => {
                        let n = queue.len().min(MAX_BATCH);
                        queue.drain(..n).collect()
                    }
                    _ => {
                        queues.remove(&stream);
                        unstick.done = true;
                        return;
                    }
                }
            };
            settle(&state, batch).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Pending<C>>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Should a leader panic or be dropped, its stream's queue goes with it (the waiting
/// requests get an error), so the next request leads afresh instead of queueing behind
/// nobody.
struct Unstick<'a, C> {
    queues: &'a Mutex<HashMap<String, Vec<Pending<C>>>>,
    stream: &'a str,
    /// The leader emptied the queue and removed it.
    done: bool,
}

impl<C> Drop for Unstick<'_, C> {
    fn drop(&mut self) {
        if !self.done {
            self.queues.lock().unwrap_or_else(|e| e.into_inner()).remove(self.stream);
        }
    }
}

/// Runs `batch` in one transaction and answers each request; if the transaction
/// fails, runs each command on its own. A request whose `Idempotency-Key` repeats an
/// earlier one's in the batch runs after the commit, on its own: it then finds the
/// earlier request's record and replays it (or runs, if that one was refused).
async fn settle<C: Batchable>(state: &AppState, batch: Vec<Pending<C>>) {
    let outcomes = if batch.len() > 1 {
        together(state, &batch).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, size = batch.len(), "group commit failed; its commands run one by one");
            batch.iter().map(|_| None).collect()
        })
    } else {
        vec![None]
    };
    for (p, outcome) in batch.into_iter().zip(outcomes) {
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => pipeline::execute(state, p.ctx, p.idempotency, &p.command).await,
        };
        let _ = p.reply.send(outcome);
    }
}

/// Where a request of the batch stands.
enum Slot {
    /// To run in the batch.
    ToRun,
    /// Answered: replayed from an earlier request, or refused.
    Done(Outcome),
    /// Decided and staged: its answer, missing the position.
    Staged(StatusCode, Map<String, Value>),
    /// Left for after the batch (its key repeats an earlier request's).
    Later,
}

impl Slot {
    fn runs(&self) -> bool {
        matches!(self, Slot::ToRun)
    }
}

/// The batch's transaction: every request's outcome (`None`: run it on its own
/// afterwards), or the error that rolled it back.
async fn together<C: Batchable>(
    state: &AppState,
    batch: &[Pending<C>],
) -> Result<Vec<Option<Outcome>>, ApiError> {
    let mut client = state.pool.get().await?;
    let mut uow = UnitOfWork::begin(&mut client).await?.with_states(&state.states);
    let mut slots = claim_keys(&uow, batch).await?;
    let running: Vec<&C> =
        batch.iter().zip(&slots).filter(|(_, s)| s.runs()).map(|(p, _)| &p.command).collect();
    let mut streams: Vec<String> = running.iter().flat_map(|c| c.streams()).collect();
    streams.sort_unstable();
    streams.dedup();
    uow.lock(&streams.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    C::prefetch(&mut uow, &running).await?;
    for (p, slot) in batch.iter().zip(slots.iter_mut()).filter(|(_, s)| s.runs()) {
        *slot = match p.command.execute(&mut uow, &p.ctx).await {
            Ok(Reply { status, body }) => {
                uow.stage(&p.ctx.metadata(), p.ctx.now);
                Slot::Staged(status, body)
            }
            // Decided against before anything was queued: only this request fails.
            Err(e) if !uow.has_pending() && is_decision(&e) => Slot::Done(Err(e)),
            Err(e) => return Err(e),
        };
    }
    let outcomes = write_answers(&mut uow, batch, slots).await?;
    uow.commit().await?;
    Ok(outcomes)
}

/// Claims the batch's `Idempotency-Key`s first, as the single-command path does
/// (before any stream lock): a key already answered replays, a key repeated within
/// the batch waits for after it.
async fn claim_keys<C>(uow: &UnitOfWork<'_>, batch: &[Pending<C>]) -> Result<Vec<Slot>, ApiError> {
    let mut keys_seen = HashSet::new();
    let mut slots = Vec::with_capacity(batch.len());
    for p in batch {
        let slot = match &p.idempotency {
            Some(key) if !keys_seen.insert((key.caller.clone(), key.key.clone())) => Slot::Later,
            Some(key) => match store::idempotency::claim(uow.tx(), key).await? {
                Some(stored) => Slot::Done(pipeline::replay(key, stored)),
                None => Slot::ToRun,
            },
            None => Slot::ToRun,
        };
        slots.push(slot);
    }
    Ok(slots)
}

/// Writes the staged commands' events in one append and their idempotency records
/// (pipelined); every request's outcome.
async fn write_answers<C>(
    uow: &mut UnitOfWork<'_>,
    batch: &[Pending<C>],
    slots: Vec<Slot>,
) -> Result<Vec<Option<Outcome>>, ApiError> {
    let mut positions = uow.save_staged().await?.into_iter();
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (p, slot) in batch.iter().zip(slots) {
        outcomes.push(match slot {
            Slot::Done(outcome) => Some(outcome),
            Slot::Later | Slot::ToRun => None,
            Slot::Staged(status, mut body) => {
                let position = positions.next().unwrap_or_default();
                body.insert("position".into(), Value::String(position.token()));
                if let Some(key) = &p.idempotency {
                    records.push((key, status.as_u16(), Value::Object(body.clone())));
                }
                Some(Ok((status, body, false)))
            }
        });
    }
    let tx = uow.tx();
    let writes = records.iter().map(|(key, status, body)| store::idempotency::record(tx, key, *status, body));
    futures::future::try_join_all(writes).await?;
    Ok(outcomes)
}

/// A refusal the command decided (a 4xx other than a retryable conflict).
fn is_decision(e: &ApiError) -> bool {
    use actix_web::ResponseError;
    e.status_code().is_client_error() && !matches!(e, ApiError::Conflict(_))
}
