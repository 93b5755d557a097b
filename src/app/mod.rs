//! The application: everything a request reaches once the connection loop
//! has framed it. [`dispatch`] maps a route to its handler; [`bench`] holds
//! the TechEmpower routes, [`ops`] the operational ones, [`ids`] and
//! [`ingest`] the ID and log services' routes, and [`api`] the product API.

pub mod api;
pub mod bench;
pub mod dispatch;
pub mod ids;
pub mod ingest;
pub mod ops;
