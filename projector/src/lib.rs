//! The projector: tails the event store into the read models (see the README) and the
//! Redis caches, and is the operator and auditor CLI.
//!
//! - [`projections`]: the four projections and how each applies a batch;
//! - [`batch`]: one exactly-once batch (events and checkpoint in one transaction);
//! - [`runner`]: the daemon, with an advisory lock per projection and hot standbys;
//! - [`cache`]: Redis writes after commit, and repair from Postgres;
//! - [`dispatch`]: the outbound-webhook dispatcher (fan-out and sender);
//! - [`expiry`]: the sweep that expires lots on time and gives notice before;
//! - [`rebuild`], [`status`], [`audit`]: the operator and auditor commands.

pub mod audit;
pub mod batch;
pub mod cache;
pub mod cli;
pub mod dispatch;
pub mod expiry;
pub mod http;
pub mod metrics;
pub mod projections;
pub mod rebuild;
pub mod reconcile;
pub mod retention;
pub mod runner;
pub mod status;
