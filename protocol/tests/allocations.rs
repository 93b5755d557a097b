//! The codec's hot path allocates nothing: parsing a head, decoding a chunked
//! body and encoding a response are counted by a global allocator that tallies
//! every call, and the tally must not move.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use swiftlet_protocol::{
    Chunked, ChunkedDecoder, ConnectionHeader, HeadLimits, HttpDate, Parse, RequestHead, ResponseHead, Status,
};

struct Counting;

static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements the `GlobalAlloc` contract; counting touches only an atomic and
// never the memory handed out, so the contract holds for `Counting` as well.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout the caller gave us, under the same contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` through `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`, as the caller promises.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn parse_decode_and_encode_do_not_allocate() {
    let head = b"POST /ingest?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\n\
Accept: */*\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    let limits = HeadLimits::default();
    let date = HttpDate::from_unix_secs(1_700_000_000);
    let mut region = Vec::with_capacity(body.len());
    let mut out = Vec::with_capacity(4096);

    let before = CALLS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        let parsed = match RequestHead::parse(head, &limits) {
            Ok(Parse::Complete(h)) => h,
            other => panic!("{other:?}"),
        };
        assert_eq!(parsed.path(head), b"/ingest");
        assert!(parsed.header(head, "user-agent").is_some());

        region.clear();
        region.extend_from_slice(body);
        let mut decoder = ChunkedDecoder::new(1 << 20);
        assert_eq!(decoder.decode(&mut region), Ok(Chunked::Complete { body_len: 11, consumed: body.len() }));

        out.clear();
        ResponseHead {
            status: Status::OK,
            content_type: Some("text/plain"),
            content_length: 13,
            connection: ConnectionHeader::Omit,
            date: &date,
            extra: &[],
        }
        .encode(&mut out);
        out.extend_from_slice(b"Hello, World!");
    }
    let after = CALLS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "the codec allocated {} times in 1000 rounds", after - before);
    assert_eq!(&region[..11], b"hello world");
}
