//! A global allocator that counts allocations: [`Counting`] wraps another
//! allocator and adds one to a process-wide counter, and to the calling
//! thread's, per `alloc` and per `realloc` (frees are not counted). The
//! thread's count lets a test measure its own code while the test harness's
//! threads allocate beside it.
//!
//! Two users: `tests/allocations.rs`, which proves the hot paths allocate
//! nothing, and the `count-allocations` build of the server, whose
//! `/__allocations` route lets perf/services.py report heap allocations per
//! request. The shipped binary does not use it.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // `const` and without a destructor: reading it never allocates, so the
    // allocator may touch it.
    static THREAD_CALLS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    CALLS.fetch_add(1, Ordering::Relaxed);
    // During thread teardown the slot may be gone; such a call goes uncounted
    // on the thread, never on the process.
    let _ = THREAD_CALLS.try_with(|c| c.set(c.get() + 1));
}

/// Allocations (and reallocations) made through [`Counting`] so far.
pub fn calls() -> u64 {
    CALLS.load(Ordering::SeqCst)
}

/// Allocations (and reallocations) the calling thread made through
/// [`Counting`] so far.
pub fn calls_on_this_thread() -> u64 {
    THREAD_CALLS.with(Cell::get)
}

pub struct Counting<A>(pub A);

// SAFETY: every method forwards its arguments unchanged to the wrapped
// allocator, which implements the `GlobalAlloc` contract; counting touches
// only an atomic and a thread-local integer, never the memory handed out, so the contract holds for
// `Counting` as well.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout the caller gave us, under the same contract.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `self.0` through `alloc` or `realloc` above,
        // with `layout`, as the caller promises.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from `self.0` with `layout`, as the caller promises.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}
