//! How aggregate events meet the store: each aggregate's event enum is adjacently
//! tagged, so its variant name is the stored `event_type` and its fields the `data`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// An aggregate: state folded from its events.
pub trait Aggregate: Default {
    type Event: DomainEvent;

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

/// An aggregate whose folded state may be cached as a snapshot, for streams that grow
/// with traffic (accounts, products). Bump `SNAPSHOT_SCHEMA` when the state's shape
/// changes: older snapshots are then ignored and rebuilt from events.
pub trait Snapshot: Aggregate + Serialize + DeserializeOwned + Clone {
    const SNAPSHOT_SCHEMA: i32 = 1;
}
