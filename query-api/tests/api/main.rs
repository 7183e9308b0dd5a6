//! The query API over real HTTP, fed by the real command API and projector.

mod authz;
mod back_office;
mod end_to_end;
mod erasure;
mod experiments;
mod hostile;
mod instances;
mod offers;
mod openapi;
mod profiles;
mod recommendations;
mod redis_cluster;
mod redis_down;
mod replica;
mod search;
mod shutdown;
mod support;
mod webhooks;
