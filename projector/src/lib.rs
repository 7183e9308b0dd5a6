//! The projector binary's library: the operator and auditor CLI.
//!
//! Today it carries `migrate` and the store-level audit commands (`audit verify`,
//! `audit export`); the projection daemon (`run`, `rebuild`, `status`) is issue #4.

pub mod audit;
pub mod cli;
