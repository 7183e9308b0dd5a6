//! The command API over real HTTP against a real Postgres.

mod bad_input;
mod helpers;
mod lifecycle;
mod limits;
mod observability;
mod races;
mod shutdown;
