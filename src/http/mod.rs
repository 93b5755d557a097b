//! What a handler sees of HTTP: the [`request`], the [`response`] it fills,
//! the [`router`] that picked it, the [`error`]s it may answer with (each
//! mapped to one status), and [`json`] writing for the bodies.

pub mod error;
pub mod json;
pub mod request;
pub mod response;
pub mod router;
