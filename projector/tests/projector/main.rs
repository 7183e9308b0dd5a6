//! The projector against real Postgres and Redis, driven by the real command API.

mod auditing;
mod cache;
mod exactly_once;
mod expiry;
mod faults;
mod order;
mod rebuild;
mod retention;
mod standby;
mod startup;
mod support;
mod webhooks;
