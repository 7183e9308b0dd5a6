//! Tally's domain: the pure reward-points model. It does no IO: the event store, the
//! HTTP plumbing and everything else that talks to the outside live in the `infra`
//! crate beside it (`domain/infra/`), which depends on this one and never the reverse,
//! so the compiler keeps the model pure.
//!
//! The model is one module per aggregate (`account`, `product`, `category`, `package`,
//! `purchase`, `redemption`, `experiment`, and `interactions` for the interaction
//! events of the first release), each with its commands, events, state,
//! `decide`/`evolve` and errors side by side. Decisions are synchronous and pure: the
//! caller passes `now` and any new ids in. [`Aggregate`] is what the command side needs
//! to load a stream and fold it.

pub mod account;
pub mod category;
pub mod experiment;
pub mod ids;
pub mod interactions;
pub mod package;
pub mod product;
pub mod purchase;
pub mod redemption;

mod event;
#[cfg(test)]
mod testing;

pub use event::{Aggregate, Decide, DomainEvent, EventCodecError, SnapshotCodec};
pub use ids::*;
