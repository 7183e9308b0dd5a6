//! The command API over real HTTP against a real Postgres.

mod bad_input;
mod helpers;
mod hostile;
mod interactions;
mod lifecycle;
mod limits;
mod memory;
mod observability;
mod offers;
mod openapi;
mod races;
mod refunds;
mod sessions;
mod shutdown;
mod webhooks;
