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

use std::any::Any;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, Transaction};
use domain::{Aggregate, DomainEvent};
use serde_json::Value;
use uuid::Uuid;

use crate::store::{self, snapshots, Checkpoint, Heads, Metadata, NewEvent, StoreError, StreamAppend};

/// Streams that grow with traffic are snapshotted every this many events.
pub const SNAPSHOT_EVERY: i64 = 64;

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
    /// The states this transaction changed, by stream: the next command of a group
    /// commit that loads the stream starts from them instead of reading it again.
    changed: HashMap<String, Box<dyn Any + Send + Sync>>,
    /// Earlier commands' writes of a group commit, not written yet.
    staged: Vec<Staged>,
}

/// A command's writes, queued for [`UnitOfWork::save_staged`].
struct Staged {
    appends: Vec<StreamAppend>,
    snapshots: Vec<DueSnapshot>,
    metadata: Metadata,
    recorded_at: DateTime<Utc>,
    newest_read: Option<Checkpoint>,
}

/// A stream's state as a push left it.
struct Changed<A> {
    state: A,
    version: i64,
    snapshot_version: i64,
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
        })
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
        if let Some(c) = self.changed.get(stream_id).and_then(|c| c.downcast_ref::<Changed<A>>()) {
            let (state, version, snapshot_version) = (c.state.clone(), c.version, c.snapshot_version);
            return Ok(Loaded {
                state,
                stream_id: stream_id.to_owned(),
                version,
                last: None,
                snapshot_version,
            });
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
        Ok(loaded)
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
        if wanted.is_empty() {
            return Ok(());
        }
        let heads: Vec<i64> = wanted.iter().map(|s| self.heads[*s].version).collect();
        let (found, events) = futures_util::future::join(
            snapshots::read_many(&*self.tx, &wanted, codec.schema),
            store::read_streams_after_snapshots(&*self.tx, &wanted, &heads, codec.schema),
        )
        .await;
        let mut states: HashMap<String, (A, i64)> = HashMap::new();
        for (stream, stored) in found? {
            if let Ok(state) = (codec.decode)(stored.state) {
                states.insert(stream, (state, stored.version));
            }
        }
        for e in &events? {
            match states.get_mut(&e.stream_id) {
                Some((state, _)) => state.apply(&A::Event::decode(&e.event_type, &e.data)?),
                // No snapshot: the events start at 1.
                None if e.version == 1 => {
                    let mut state = A::default();
                    state.apply(&A::Event::decode(&e.event_type, &e.data)?);
                    states.insert(e.stream_id.clone(), (state, 0));
                }
                // A snapshot that did not decode: only the tail was read, so the stream
                // stays out of the cache and its own load folds it whole.
                None => {}
            }
        }
        for (stream, (state, snapshot_version)) in states {
            let version = self.heads[&stream].version;
            self.changed.insert(stream, Box::new(Changed { state, version, snapshot_version }));
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
        if let Some(codec) = A::SNAPSHOT.filter(|_| version - loaded.snapshot_version >= SNAPSHOT_EVERY) {
            self.snapshots.push(DueSnapshot {
                stream_id: loaded.stream_id.clone(),
                schema: codec.schema,
                version,
                state: (codec.encode)(&state)?,
            });
            snapshot_version = version;
        }
        if !A::STATELESS {
            let changed = Changed { state: state.clone(), version, snapshot_version };
            self.changed.insert(loaded.stream_id.clone(), Box::new(changed));
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
        Ok(staged.iter().zip(lasts).map(|(s, last)| last.or(s.newest_read).unwrap_or_default()).collect())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}
