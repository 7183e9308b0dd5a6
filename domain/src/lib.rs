//! Tally's domain: the pure reward-points model and, in [`infra`], the shared
//! infrastructure the binaries need.
//!
//! The model is one module per aggregate (`account`, `product`, `category`, `package`,
//! `purchase`, `redemption`, `interactions`), each with its commands, events, state,
//! `decide`/`evolve` and errors side by side. Decisions are synchronous and pure: the
//! caller passes `now` and any new ids in. [`Aggregate`] is what the command side needs
//! to load a stream and fold it.

pub mod account;
pub mod category;
pub mod ids;
pub mod infra;
pub mod interactions;
pub mod package;
pub mod product;
pub mod purchase;
pub mod redemption;

mod event;
#[cfg(test)]
mod testing;

pub use event::{Aggregate, Decide, DomainEvent, EventCodecError, Snapshot};
pub use ids::*;
