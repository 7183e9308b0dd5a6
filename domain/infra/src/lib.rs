//! Shared infrastructure used by more than one binary: the event store adapter and its
//! unit of work, the hash chain, database pools and migrations, configuration,
//! telemetry, tokens, HTTP plumbing and the read-model contract. It builds on the pure
//! model in the `domain` crate, which never imports anything from here.

pub mod behaviour;
pub mod cache;
pub mod chain;
pub mod config;
pub mod db;
pub mod history;
pub mod http;
pub mod read_model;
pub mod states;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod token;
pub mod uow;
pub mod views;
pub mod webhooks;
