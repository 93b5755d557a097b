//! Turns a panic inside a handler future into a value, so one bad request gets
//! a 500 and its connection, its worker and the process carry on.
//!
//! Each poll of the future runs inside `catch_unwind`; once it has panicked it
//! is never polled again. No unsafe code: the caller pins the future where it
//! lives (in the connection's own future) and lends it here, so it is stored
//! once; taken by value, an async fn keeps its argument twice (as the
//! argument and as the pinned local), and the connection's task, which every
//! connection allocates, grew by the whole handler future.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::Poll;

/// Runs `fut` to completion, or returns the panic payload if a poll panicked.
pub async fn catch_panic<F: Future>(mut fut: Pin<&mut F>) -> Result<F::Output, Box<dyn Any + Send>> {
    // AssertUnwindSafe: after a panic the future is dropped unpolled, and the
    // caller discards whatever partial response it had written.
    std::future::poll_fn(move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
        Err(payload) => Poll::Ready(Err(payload)),
    })
    .await
}

/// The panic message, for the log.
pub fn describe(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
