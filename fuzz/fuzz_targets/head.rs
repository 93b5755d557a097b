//! Request-head parser: arbitrary bytes in; see `check_head` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet_protocol::fuzzing::check_head(data);
});
