//! The properties the fuzz targets check on the server's own parsers (the
//! request types and the router), compiled only with the `fuzzing` feature:
//! the fuzz crate and the corpus-replay test turn it on.

pub mod fuzzing;
