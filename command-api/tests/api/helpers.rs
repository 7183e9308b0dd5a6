//! The shared test harness lives in `command_api::testkit` (feature `testkit`), so the
//! projector's and the query API's tests drive the same real command API.

pub use command_api::testkit::*;
