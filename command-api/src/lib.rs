//! The command API: HTTP commands → lock and load streams → pure `decide` → one atomic
//! append to the event store.
//!
//! Layout: [`startup`] builds the app; [`routes`] holds one module per area of the HTTP
//! surface; [`pipeline`] runs every command in a unit of work (idempotency, retries,
//! append). Body and token extraction and problem+json errors are shared with the
//! query API in `infra::http`.

pub mod hot;
pub mod passwords;
pub mod pipeline;
pub mod routes;
pub mod startup;
pub mod state;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod throttle;
pub mod tokens;
