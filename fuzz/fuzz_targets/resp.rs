//! Redis reply decoder: arbitrary bytes as they would arrive from the cache
//! connection; see `check_resp` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet_protocol::fuzzing::check_resp(data);
});
