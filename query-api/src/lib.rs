//! The query API (the README's "Query API" section): balances, ledger, catalog and search, orders,
//! recommendations and audit reads, from Redis when it can and from the `read` schema
//! when it must.
//!
//! Layout: [`startup`] builds the app; [`routes`] holds one module per area;
//! [`fresh`] implements read-your-writes and the Redis read-through; [`reco`] the
//! recommendation engine.

pub mod config;
pub mod experiments;
pub mod fresh;
pub mod metrics;
pub mod reco;
pub mod replica;
pub mod routes;
pub mod startup;
pub mod state;

pub use startup::Application;
