//! swiftlet: a thread-per-core HTTP/1.1 backend on raw async IO.
//!
//! Where to start reading: [`server`] binds one listener per worker and starts
//! the threads; [`worker`] runs one thread's runtime and accept loop;
//! [`connection`] is the per-connection read/decode/answer/write loop; it asks
//! [`router`] for the route and calls into [`handlers`], which reach
//! PostgreSQL and Redis through the worker's own [`storage`] connections. The
//! product API (the Conduit backend) is [`api`], one module per resource; log
//! ingestion and its group commit are [`ingest`]; video files live in
//! [`objects`] (a local directory or S3), and the one route that streams its
//! body reads it through [`body_stream`]. Connections speak plain TCP or TLS
//! ([`transport`], [`tls`]). The HTTP wire rules
//! themselves live in the `swiftlet-protocol` crate (`protocol/`), which has no
//! IO at all.

// Every unsafe operation sits in its own block with a SAFETY comment that
// proves it sound, also inside unsafe fns (the allocator wrapper).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod config;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod metrics;
pub mod server;
pub mod storage;
#[cfg(feature = "fuzzing")]
pub mod testing;

pub use config::Config;
pub use server::Server;
