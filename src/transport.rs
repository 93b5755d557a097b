//! What a connection reads requests from and writes responses to: a plain TCP
//! stream or a TLS session over one. The connection code is written once
//! against this and compiled for each.

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream in both directions.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> Transport for T {}
