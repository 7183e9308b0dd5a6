//! The command API: HTTP commands → lock and load streams → pure `decide` → one atomic
//! append to the event store.
//!
//! Layout: [`startup`] builds the app; [`routes`] holds one module per area of the HTTP
//! surface; [`pipeline`] runs every command (idempotency, retries, append);
//! [`extract`] parses bodies and bearer tokens; [`error`] renders problem+json.

pub mod pipeline;
pub mod routes;
pub use infra::http::{error, extract, request_id};
pub mod startup;
pub mod state;
#[cfg(feature = "testkit")]
pub mod testkit;
