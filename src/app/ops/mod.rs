//! Routes for operating the server rather than serving users: readiness, and
//! the fault-injection routes the tests turn on.

pub mod fault;
pub mod ready;
