//! Chunked body decoder: first byte picks how the rest is split into reads;
//! see `check_chunked` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet_protocol::fuzzing::check_chunked(data);
});
