//! The TechEmpower benchmark routes: plaintext and JSON, and the database
//! tests (single and multiple queries, updates, fortunes, cached queries).

pub mod fortunes;
pub mod hello;
pub mod sql;
pub mod world;
