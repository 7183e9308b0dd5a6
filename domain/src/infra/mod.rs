//! Shared infrastructure used by more than one binary: the event store adapter, the
//! hash chain, database pools and migrations, configuration, telemetry and tokens.
//! The pure model (the rest of this crate) never imports anything from here.

pub mod cache;
pub mod chain;
pub mod config;
pub mod db;
pub mod history;
pub mod http;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod token;
pub mod views;
