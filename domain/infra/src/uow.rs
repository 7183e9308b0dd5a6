//! A command's unit of work: the one owner of lock → load → decide → append.
//!
//! A handler says which streams it needs and what to decide; the unit of work does the
//! rest in one transaction:
//!
//! ```text
//! let mut uow = UnitOfWork::begin(&mut client).await?;
//! uow.lock(&[&account, &product]).await?;           // advisory locks, no xid yet
//! let product = uow.load::<Product>(&product).await?; // snapshot + tail, bounded by the head
//! let events = product.state.decide(command)?;
//! let after = uow.push(product, &events)?;           // queued; a due snapshot too
//! let position = uow.save(&metadata, now).await?;    // every write happens here
//! uow.commit().await?;
//! ```
//!
//! Nothing is written before [`UnitOfWork::save`], so the transaction gets its id only
//! after every lock is held: that is what keeps the global `(tx_id, position)` order in
//! per-stream version order (see [`store::lock_streams`]). Extra rows a command writes
//! beside its events (a `users` row) go through [`UnitOfWork::tx`] after its locks.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, Transaction};
use domain::{Aggregate, DomainEvent};
use serde_json::Value;
use uuid::Uuid;

use crate::states::{Behind, Kept, StateCache};
use crate::store::{self, snapshots, Checkpoint, Heads, Metadata, NewEvent, StoreError, StreamAppend};

/// Streams that grow with traffic are snapshotted every this many events, or every
/// half [`domain::Aggregate::weight`] events when the state weighs more: writing a
/// snapshot costs about its weight, so that keeps the cost per event bounded (two
/// units at most), and a load without a kept state folds a tail no longer than half
/// the snapshot it starts from. Half, not all: a stream of credits alone grows its
/// weight with every event and would never fall due.
pub const SNAPSHOT_EVERY: i64 = 64;

fn snapshot_every<A: Aggregate>(state: &A) -> i64 {
    SNAPSHOT_EVERY.max(state.weight() as i64 / 2)
}

/// A stream folded into its aggregate, with the version and checkpoint it was at.
#[derive(Debug)]
pub struct Loaded<A> {
    pub state: A,
    pub stream_id: String,
    pub version: i64,
    /// The checkpoint of the stream's last event (`None` for an empty stream, and for a
    /// stateless aggregate, whose events are never read).
    pub last: Option<Checkpoint>,
    /// The version of the snapshot the fold started from (0: from the first event).
    snapshot_version: i64,
}

impl<A> Loaded<A> {
    pub fn exists(&self) -> bool {
        self.version > 0
    }
}

/// A snapshot to write once the events it covers are appended.
struct DueSnapshot {
    stream_id: String,
    schema: i32,
    version: i64,
    state: Value,
}

/// One command's transaction: the streams it holds locked, the events it will append
/// and the snapshots that fall due.
pub struct UnitOfWork<'c> {
    tx: Transaction<'c>,
    heads: Heads,
    appends: Vec<StreamAppend>,
    snapshots: Vec<DueSnapshot>,
    /// The newest checkpoint among the streams loaded: a command that appends nothing
    /// answers with it, so a read-your-writes wait covers what it looked at.
    newest_read: Option<Checkpoint>,
    /// The states this transaction changed or prefetched, by stream: the next command
    /// of a group commit that loads the stream starts from them instead of reading it
    /// again, and the process keeps them once committed.
    changed: HashMap<String, Kept>,
    /// Earlier commands' writes of a group commit, not written yet.
    staged: Vec<Staged>,
    /// The process's recent states: loads start from them, and due snapshots are
    /// written behind, after the commit (see [`crate::states`]).
    states: Option<Arc<StateCache>>,
    behind: Vec<Behind>,
    /// The last event this transaction appended.
    saved_last: Option<Checkpoint>,
}

/// A command's writes, queued for [`UnitOfWork::save_staged`].
struct Staged {
    appends: Vec<StreamAppend>,
    snapshots: Vec<DueSnapshot>,
    metadata: Metadata,
    recorded_at: DateTime<Utc>,
    newest_read: Option<Checkpoint>,
}

/// A stream's state (the value of a [`Kept`]), and the version of its last snapshot.
struct Changed<A> {
    state: A,
    snapshot_version: i64,
}

impl<A: Aggregate + Send + Sync + 'static> Changed<A> {
    fn kept(state: A, version: i64, snapshot_version: i64, last: Option<Checkpoint>) -> Kept {
        let weight = state.weight();
        Kept { version, hash: Vec::new(), last, weight, value: Arc::new(Changed { state, snapshot_version }) }
    }
}

impl<'c> UnitOfWork<'c> {
    pub async fn begin(client: &'c mut Client) -> Result<Self, StoreError> {
        Ok(UnitOfWork {
            tx: client.transaction().await?,
            heads: Heads::new(),
            appends: Vec::new(),
            snapshots: Vec::new(),
            newest_read: None,
            changed: HashMap::new(),
            staged: Vec::new(),
            states: None,
            behind: Vec::new(),
            saved_last: None,
        })
    }

    /// Loads start from the process's recent states, and keep them; snapshots are
    /// written behind the commit.
    pub fn with_states(mut self, states: &Arc<StateCache>) -> Self {
        self.states = Some(states.clone());
        self
    }

    /// The transaction, for rows written beside the events (after every lock).
    pub fn tx(&self) -> &tokio_postgres::Transaction<'c> {
        &self.tx
    }

    /// Locks the streams for the rest of the transaction (those not yet held, in one
    /// round of key-ordered advisory locks) and reads their heads.
    pub async fn lock(&mut self, stream_ids: &[&str]) -> Result<(), StoreError> {
        let missing: Vec<&str> =
            stream_ids.iter().copied().filter(|s| !self.heads.contains_key(*s)).collect();
        if !missing.is_empty() {
            let heads = store::lock_streams(&*self.tx, &missing).await?;
            self.heads.extend(heads);
        }
        Ok(())
    }

    /// Locks (if not yet held) and loads one stream: from its snapshot when it has
    /// one, plus the events after it up to the locked head.
    pub async fn load<A: Aggregate + Send + Sync + 'static>(
        &mut self,
        stream_id: &str,
    ) -> Result<Loaded<A>, StoreError> {
        self.lock(&[stream_id]).await?;
        // Cloned, not taken: a command refused after loading must leave it for the next.
        if let Some(loaded) = self.changed.get(stream_id).and_then(|k| loaded_from(stream_id, k)) {
            self.newest_read = self.newest_read.max(loaded.last);
            return Ok(loaded);
        }
        let kept = self.states.as_ref().zip(self.heads.get(stream_id)).and_then(|(s, h)| s.get(stream_id, h));
        if let Some(loaded) = kept.as_ref().and_then(|k| loaded_from(stream_id, k)) {
            self.newest_read = self.newest_read.max(loaded.last);
            return Ok(loaded);
        }
        let head = self.heads.get(stream_id).map_or(store::NO_STREAM, |h| h.version);
        let loaded = if A::STATELESS {
            Loaded {
                state: A::default(),
                stream_id: stream_id.to_owned(),
                version: head,
                last: None,
                snapshot_version: 0,
            }
        } else {
            self.fold(stream_id, head).await?
        };
        self.newest_read = self.newest_read.max(loaded.last);
        self.keep(&loaded);
        Ok(loaded)
    }

    /// Keeps a state just folded from the store (committed, up to the locked head).
    fn keep<A: Aggregate + Send + Sync + 'static>(&self, loaded: &Loaded<A>) {
        let (Some(states), Some(head)) = (&self.states, self.heads.get(&loaded.stream_id)) else { return };
        if A::STATELESS || head.version != loaded.version || loaded.version == store::NO_STREAM {
            return;
        }
        let mut kept =
            Changed::kept(loaded.state.clone(), loaded.version, loaded.snapshot_version, loaded.last);
        kept.hash = head.hash.clone();
        states.put(&loaded.stream_id, kept);
    }

    async fn fold<A: Aggregate>(&self, stream_id: &str, head: i64) -> Result<Loaded<A>, StoreError> {
        let (mut state, snapshot_version, mut last, events) = match A::SNAPSHOT {
            Some(codec) if head >= SNAPSHOT_EVERY => {
                // Both reads go out together (pipelined on the connection); the events
                // query itself starts after the snapshot's version.
                let (snapshot, tail) = futures_util::future::join(
                    snapshots::read(&*self.tx, stream_id, codec.schema),
                    store::read_stream_after_snapshot(&*self.tx, stream_id, codec.schema, head),
                )
                .await;
                match snapshot?.and_then(|s| Some(((codec.decode)(s.state).ok()?, s.version, s.last))) {
                    Some((state, version, last)) => (state, version, Some(last), tail?),
                    // None, or one that no longer decodes: fold the whole stream.
                    None => (A::default(), 0, None, store::read_stream(&*self.tx, stream_id, 0).await?),
                }
            }
            _ => (A::default(), 0, None, store::read_stream(&*self.tx, stream_id, 0).await?),
        };
        for e in &events {
            state.apply(&A::Event::decode(&e.event_type, &e.data)?);
        }
        last = events.last().map(Checkpoint::of).or(last);
        let version = events.last().map_or(snapshot_version, |e| e.version);
        Ok(Loaded { state, stream_id: stream_id.to_owned(), version, last, snapshot_version })
    }

    /// Loads several locked streams of one aggregate at once (two pipelined reads for
    /// all of them), so the loads that follow in this transaction start from them: a
    /// group commit prefetches its commands' accounts. A stream whose snapshot does not
    /// decode is left to its own load.
    pub async fn prefetch<A: Aggregate + Send + Sync + 'static>(
        &mut self,
        stream_ids: &[&str],
    ) -> Result<(), StoreError> {
        let Some(codec) = A::SNAPSHOT.filter(|_| !A::STATELESS) else { return Ok(()) };
        let mut wanted: Vec<&str> = stream_ids
            .iter()
            .copied()
            .filter(|s| !self.changed.contains_key(*s) && self.heads.get(*s).is_some_and(|h| h.version > 0))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if let Some(states) = &self.states {
            let (heads, changed) = (&self.heads, &mut self.changed);
            wanted.retain(|s| match states.get(s, &heads[*s]) {
                Some(kept) => {
                    changed.insert((*s).to_owned(), kept);
                    false
                }
                None => true,
            });
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let heads: Vec<i64> = wanted.iter().map(|s| self.heads[*s].version).collect();
        let (found, events) = futures_util::future::join(
            snapshots::read_many(&*self.tx, &wanted, codec.schema),
            store::read_streams_after_snapshots(&*self.tx, &wanted, &heads, codec.schema),
        )
        .await;
        let mut folded: HashMap<String, (A, i64, Checkpoint)> = HashMap::new();
        for (stream, stored) in found? {
            if let Ok(state) = (codec.decode)(stored.state) {
                folded.insert(stream, (state, stored.version, stored.last));
            }
        }
        for e in &events? {
            match folded.get_mut(&e.stream_id) {
                Some((state, _, last)) => {
                    state.apply(&A::Event::decode(&e.event_type, &e.data)?);
                    *last = Checkpoint::of(e);
                }
                // No snapshot: the events start at 1.
                None if e.version == 1 => {
                    let mut state = A::default();
                    state.apply(&A::Event::decode(&e.event_type, &e.data)?);
                    folded.insert(e.stream_id.clone(), (state, 0, Checkpoint::of(e)));
                }
                // A snapshot that did not decode: only the tail was read, so the stream
                // stays out of the cache and its own load folds it whole.
                None => {}
            }
        }
        for (stream, (state, snapshot_version, last)) in folded {
            let head = &self.heads[&stream];
            let mut kept = Changed::kept(state, head.version, snapshot_version, Some(last));
            kept.hash = head.hash.clone();
            if let Some(states) = &self.states {
                states.put(&stream, kept.clone());
            }
            self.changed.insert(stream, kept);
        }
        Ok(())
    }

    /// A stream whose id this command just generated: nothing to lock or read. Its
    /// append still expects version 0, so an existing stream would be refused.
    pub fn fresh<A: Aggregate>(&self, stream_id: String) -> Loaded<A> {
        Loaded { state: A::default(), stream_id, version: store::NO_STREAM, last: None, snapshot_version: 0 }
    }

    /// Whether a stream exists, without locking it (a reference to another entity).
    pub async fn exists(&self, stream_id: &str) -> Result<bool, StoreError> {
        store::stream_exists(&*self.tx, stream_id).await
    }

    /// Queues a decision's events for the loaded stream (one push per stream) and
    /// returns the state after them; a snapshot is queued too when one falls due.
    pub fn push<A: Aggregate + Send + Sync + 'static>(
        &mut self,
        loaded: Loaded<A>,
        events: &[A::Event],
    ) -> Result<A, StoreError> {
        let mut state = loaded.state;
        events.iter().for_each(|e| state.apply(e));
        if events.is_empty() {
            return Ok(state);
        }
        debug_assert!(
            self.appends.iter().all(|a| a.stream_id != loaded.stream_id),
            "one push per stream and unit of work"
        );
        let version = loaded.version + events.len() as i64;
        let mut snapshot_version = loaded.snapshot_version;
        if let Some(codec) =
            A::SNAPSHOT.filter(|_| version - loaded.snapshot_version >= snapshot_every(&state))
        {
            let (stream_id, schema) = (loaded.stream_id.clone(), codec.schema);
            if self.states.is_some() {
                let (encode, copy) = (codec.encode, state.clone());
                self.behind.push(Behind {
                    stream_id,
                    schema,
                    version,
                    encode: Box::new(move || encode(&copy)),
                });
            } else {
                self.snapshots.push(DueSnapshot {
                    stream_id,
                    schema,
                    version,
                    state: (codec.encode)(&state)?,
                });
            }
            snapshot_version = version;
        }
        if !A::STATELESS {
            let kept = Changed::kept(state.clone(), version, snapshot_version, None);
            self.changed.insert(loaded.stream_id.clone(), kept);
        }
        let events = events
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
            .collect();
        self.appends.push(StreamAppend {
            stream_id: loaded.stream_id,
            expected_version: loaded.version,
            events,
        });
        Ok(state)
    }

    /// Whether events are queued that [`UnitOfWork::save`] has not written yet.
    pub fn has_pending(&self) -> bool {
        !self.appends.is_empty()
    }

    /// Writes everything queued: the events of every stream in one append, then the
    /// due snapshots. Returns the checkpoint to hand back to the client: the last event
    /// appended, or, when nothing was, the newest event the command read.
    pub async fn save(&mut self, metadata: &Metadata, now: DateTime<Utc>) -> Result<Checkpoint, StoreError> {
        if self.appends.is_empty() {
            return Ok(self.newest_read.unwrap_or_default());
        }
        let appended = store::append_locked(&*self.tx, &mut self.heads, &self.appends, metadata, now).await?;
        self.saved_last = self.saved_last.max(Some(appended.last));
        for s in self.snapshots.drain(..) {
            let stored = snapshots::Stored { version: s.version, state: s.state, last: appended.last };
            snapshots::write(&*self.tx, &s.stream_id, s.schema, &stored).await?;
        }
        self.appends.clear();
        Ok(appended.last)
    }

    /// Sets aside what the command queued, with its own metadata and clock, for one
    /// [`UnitOfWork::save_staged`] with the other commands of a group commit. The next
    /// command's loads see its changes already (the states it pushed).
    pub fn stage(&mut self, metadata: &Metadata, now: DateTime<Utc>) {
        self.staged.push(Staged {
            appends: std::mem::take(&mut self.appends),
            snapshots: std::mem::take(&mut self.snapshots),
            metadata: metadata.clone(),
            recorded_at: now,
            newest_read: self.newest_read,
        });
    }

    /// Writes every staged command's events in one append and their due snapshots.
    /// Returns each command's checkpoint, in staging order (as [`UnitOfWork::save`]).
    pub async fn save_staged(&mut self) -> Result<Vec<Checkpoint>, StoreError> {
        let staged = std::mem::take(&mut self.staged);
        let lasts = if staged.iter().any(|s| s.appends.iter().any(|a| !a.events.is_empty())) {
            let groups: Vec<store::Group<'_>> = staged
                .iter()
                .map(|s| store::Group {
                    appends: &s.appends,
                    metadata: &s.metadata,
                    recorded_at: s.recorded_at,
                })
                .collect();
            store::append_groups(&*self.tx, &mut self.heads, &groups).await?
        } else {
            vec![None; staged.len()]
        };
        for (s, last) in staged.iter().zip(&lasts) {
            for snap in &s.snapshots {
                let stored = snapshots::Stored {
                    version: snap.version,
                    state: snap.state.clone(),
                    last: last.unwrap_or_default(),
                };
                snapshots::write(&*self.tx, &snap.stream_id, snap.schema, &stored).await?;
            }
        }
        self.saved_last = self.saved_last.max(lasts.iter().copied().max().flatten());
        Ok(staged.iter().zip(lasts).map(|(s, last)| last.or(s.newest_read).unwrap_or_default()).collect())
    }

    /// Commits; then the process keeps the states this transaction left (those it
    /// appended to, at their new heads, and those it read) and writes their due
    /// snapshots behind.
    pub async fn commit(self) -> Result<(), StoreError> {
        let UnitOfWork { tx, heads, changed, states, behind, saved_last, .. } = self;
        tx.commit().await?;
        let Some(states) = states else { return Ok(()) };
        for (stream_id, mut kept) in changed {
            // A state whose events were not all written never reaches the cache.
            let Some(head) = heads.get(&stream_id).filter(|h| h.version == kept.version && h.version > 0)
            else {
                continue;
            };
            kept.hash = head.hash.clone();
            kept.last = kept.last.or(saved_last);
            states.put(&stream_id, kept);
        }
        if let Some(last) = saved_last {
            states.write_behind(behind, last);
        }
        Ok(())
    }
}

fn loaded_from<A: Aggregate + 'static>(stream_id: &str, kept: &Kept) -> Option<Loaded<A>> {
    let c = kept.value.downcast_ref::<Changed<A>>()?;
    Some(Loaded {
        state: c.state.clone(),
        stream_id: stream_id.to_owned(),
        version: kept.version,
        last: kept.last,
        snapshot_version: c.snapshot_version,
    })
}
