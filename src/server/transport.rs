//! What a connection reads requests from and writes responses to: a plain TCP
//! stream or a TLS session over one. The connection code is written once
//! against this and compiled for each.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream in both directions, over a TCP socket.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// The socket underneath.
    fn socket(&self) -> &TcpStream;

    /// Makes the coming close a reset: the kernel drops what is still queued
    /// for a client that stopped reading, instead of keeping it (and the
    /// socket) alive to deliver it, unboundedly long after we gave up.
    fn reset_on_close(&self) {
        let _ = socket2::SockRef::from(self.socket()).set_linger(Some(std::time::Duration::ZERO));
    }
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }
}
