//! How aggregate events meet the store: each aggregate's event enum is adjacently
//! tagged, so its variant name is the stored `event_type` and its fields the `data`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// An aggregate: state folded from its events.
pub trait Aggregate: Default + Clone {
    type Event: DomainEvent;

    /// The prefix of this aggregate's stream ids: its streams are `{STREAM}-{id}`. The
    /// ids, the projections, history and the query API all take it from here.
    const STREAM: &'static str;

    /// How the state is cached as a snapshot, for streams that grow with traffic
    /// (accounts, products); `None` for streams that stay short.
    const SNAPSHOT: Option<SnapshotCodec<Self>> = None;

    /// True when decisions never read the state (interactions): the command side then
    /// needs the stream's version only, never its events.
    const STATELESS: bool = false;

    /// About how many records the state holds (lots, reservations, buyers): what it
    /// weighs in the command side's cache of recent states.
    fn weight(&self) -> usize {
        1
    }

    /// `evolve`: the state after `event`. Total: an event that was stored is a fact.
    fn apply(&mut self, event: &Self::Event);

    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot decode event {event_type}: {source}")]
pub struct EventCodecError {
    pub event_type: String,
    #[source]
    pub source: serde_json::Error,
}

/// An event enum that round-trips through `(event_type, data)`.
pub trait DomainEvent: Serialize + DeserializeOwned + Sized {
    /// Bumped when a variant's fields change incompatibly.
    const SCHEMA_VERSION: i32 = 1;

    /// Splits the event into its stored type name and data.
    fn encode(&self) -> (String, Value) {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => {
                let ty = match map.remove("type") {
                    Some(Value::String(s)) => s,
                    _ => String::new(),
                };
                (ty, map.remove("data").unwrap_or(Value::Object(Default::default())))
            }
            _ => (String::new(), Value::Null),
        }
    }

    fn decode(event_type: &str, data: &Value) -> Result<Self, EventCodecError> {
        let tagged = serde_json::json!({ "type": event_type, "data": data });
        serde_json::from_value(tagged)
            .map_err(|source| EventCodecError { event_type: event_type.to_owned(), source })
    }
}

/// An aggregate that takes commands: `decide` turns a command into events or a
/// business rejection, without IO.
pub trait Decide: Aggregate {
    type Command;
    type Error;

    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

/// How an aggregate's state is written to and read from a snapshot. Bump `schema` when
/// the state's shape changes: older snapshots are then ignored and rebuilt from events.
pub struct SnapshotCodec<A> {
    pub schema: i32,
    pub encode: fn(&A) -> Result<Value, serde_json::Error>,
    pub decode: fn(Value) -> Result<A, serde_json::Error>,
}

impl<A: Serialize + DeserializeOwned> SnapshotCodec<A> {
    /// The state's own serde shape, under `schema`.
    pub const fn json(schema: i32) -> Self {
        SnapshotCodec { schema, encode: encode_json::<A>, decode: decode_json::<A> }
    }
}

fn encode_json<A: Serialize>(state: &A) -> Result<Value, serde_json::Error> {
    serde_json::to_value(state)
}

fn decode_json<A: DeserializeOwned>(value: Value) -> Result<A, serde_json::Error> {
    serde_json::from_value(value)
}
