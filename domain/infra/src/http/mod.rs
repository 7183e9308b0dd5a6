//! The HTTP conventions both APIs share (the README's error table): problem+json errors
//! with stable codes, request ids, JSON bodies and bearer-token callers, rate limits,
//! request metrics, and the app set-up and guard of [`conventions`].

pub mod conventions;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod request_id;
