//! Times each pair on the same inputs, interleaved over rounds, and counts
//! heap allocations per call; prints a markdown table (median ns per call of
//! the rounds, allocations per call). Sizes come from `sizes.sh`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use swiftlet_crates_vs_ours::*;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed straight to the system allocator with the same
// arguments; the only addition is a relaxed counter increment, which touches
// no memory the allocator hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract for `alloc` is forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CALLS: u64 = 2_000_000;
const ROUNDS: usize = 7;

/// Median ns per call over the rounds, and allocations per call.
fn measure(mut f: impl FnMut()) -> (f64, f64) {
    let mut per_call = Vec::with_capacity(ROUNDS);
    let before = ALLOCS.load(Relaxed);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..CALLS {
            f();
        }
        per_call.push(start.elapsed().as_nanos() as f64 / CALLS as f64);
    }
    let allocs = (ALLOCS.load(Relaxed) - before) as f64 / (CALLS * ROUNDS as u64) as f64;
    per_call.sort_by(|a, b| a.total_cmp(b));
    (per_call[ROUNDS / 2], allocs)
}

fn main() {
    let (mp4, webm) = (mp4_head(), webm_head());
    // The pairs agree on the inputs timed (else the comparison means nothing).
    let (mut a, mut b) = (Vec::new(), Vec::new());
    http_date_ours(SECS, &mut a);
    http_date_crate(SECS, &mut b);
    assert_eq!(a, b, "HTTP date");
    rfc3339_write_ours(MICROS, &mut a);
    rfc3339_write_crate(MICROS, &mut b);
    assert_eq!(a, b, "RFC 3339 write");
    assert_eq!(rfc3339_read_ours(STAMP), rfc3339_read_crate(STAMP), "RFC 3339 read");
    assert_eq!(range_ours(RANGE, LEN), range_crate(RANGE, LEN), "Range");
    for head in [&mp4, &webm] {
        assert_eq!(sniff_ours(head), sniff_crate(head), "sniff");
    }

    let mut out = Vec::with_capacity(64);
    let rows: Vec<(&str, (f64, f64), (f64, f64))> = vec![
        (
            "HTTP date, format (httpdate)",
            measure(|| http_date_ours(black_box(SECS), &mut out)),
            measure(|| http_date_crate(black_box(SECS), &mut out)),
        ),
        (
            "RFC 3339 ms, format (humantime)",
            measure(|| rfc3339_write_ours(black_box(MICROS), &mut out)),
            measure(|| rfc3339_write_crate(black_box(MICROS), &mut out)),
        ),
        (
            "RFC 3339, parse (humantime)",
            measure(|| {
                black_box(rfc3339_read_ours(black_box(STAMP)));
            }),
            measure(|| {
                black_box(rfc3339_read_crate(black_box(STAMP)));
            }),
        ),
        (
            "Range header (http-range-header)",
            measure(|| {
                black_box(range_ours(black_box(RANGE), LEN));
            }),
            measure(|| {
                black_box(range_crate(black_box(RANGE), LEN));
            }),
        ),
        (
            "MP4/WebM sniff (infer)",
            measure(|| {
                black_box(sniff_ours(black_box(&mp4)));
                black_box(sniff_ours(black_box(&webm)));
            }),
            measure(|| {
                black_box(sniff_crate(black_box(&mp4)));
                black_box(sniff_crate(black_box(&webm)));
            }),
        ),
    ];
    println!("| format (crate) | ours, ns/call | crate, ns/call | crate/ours | ours, allocs/call | crate, allocs/call |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, (ours, ours_allocs), (theirs, theirs_allocs)) in rows {
        println!(
            "| {name} | {ours:.1} | {theirs:.1} | {:.2} | {ours_allocs:.2} | {theirs_allocs:.2} |",
            theirs / ours
        );
    }
}
